// Command mkuser manages the users, app passwords, aliases and domains of a
// postkit root: mkuser [--root DIR] COMMAND [command flags] ARGS. See
// mkuser(8); the work is done by packages accounts and domaincheck.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/postkit/postkit/accounts"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/sysexits"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

type action func(c *cli.Context, root control.Root, args []string) error

var random = &cli.BoolFlag{Name: "random", Usage: "generate the password and print it"}

func main() {
	unix.Umask(0o077)
	app := &cli.App{
		Name:      "mkuser",
		Usage:     "manage postkit users, app passwords, aliases, domains and Sieve scripts",
		UsageText: "mkuser [--root DIR] COMMAND [command flags] ARGS  (flags go before arguments)",
		Flags:     []cli.Flag{control.RootFlag()},
		Commands: []*cli.Command{
			command("add", "ADDRESS", "add a user and its Maildir; password on standard input", 1, 1, setPassword(true), random),
			command("passwd", "ADDRESS", "change a user's password; password on standard input", 1, 1, setPassword(false), random),
			command("del", "ADDRESS", "delete a user; its mail stays unless --purge", 1, 1, deleteUser,
				&cli.BoolFlag{Name: "purge", Usage: "also delete the user's Maildir"}),
			command("list", "[DOMAIN]", "list users", 0, 1, func(c *cli.Context, root control.Root, a []string) error {
				list, err := accounts.ListUsers(root, c.Args().First())
				for _, u := range list {
					fmt.Println(u)
				}
				return err
			}),
			command("check", "ADDRESS", "check a password from standard input: exit 0 match, 1 no match", 1, 1, check),
			group("alias", "manage aliases and @domain catch-alls",
				command("add", "ALIAS TARGET...", "add an alias, or targets to it", 2, -1, func(c *cli.Context, root control.Root, a []string) error {
					_, err := accounts.AddAlias(root, a[0], a[1:])
					return err
				}),
				command("del", "ALIAS [TARGET...]", "delete targets, or the whole alias", 1, -1, func(c *cli.Context, root control.Root, a []string) error {
					return accounts.DeleteAlias(root, a[0], a[1:])
				}),
				command("list", "[DOMAIN]", "list aliases", 0, 1, func(c *cli.Context, root control.Root, a []string) error {
					list, err := accounts.ListAliases(root, c.Args().First())
					for _, al := range list {
						fmt.Printf("%s: %s\n", al.Key, strings.Join(al.Targets, ", "))
					}
					return err
				})),
			group("app-password", "manage a user's app passwords",
				command("add", "ADDRESS LABEL", "make an app password and print it", 2, 2, func(c *cli.Context, root control.Root, a []string) error {
					pw, err := accounts.AddAppPassword(root, a[0], a[1])
					return printPassword(pw, err)
				}),
				command("list", "ADDRESS", "list app passwords: label, tab, creation time", 1, 1, func(c *cli.Context, root control.Root, a []string) error {
					list, err := accounts.ListAppPasswords(root, a[0])
					for _, p := range list {
						fmt.Printf("%s\t%s\n", p.Label, p.Created.UTC().Format(time.RFC3339))
					}
					return err
				}),
				command("revoke", "ADDRESS LABEL", "delete an app password", 2, 2, func(c *cli.Context, root control.Root, a []string) error {
					return accounts.RevokeAppPassword(root, a[0], a[1])
				})),
			domainCommands(),
			sieveCommand(),
		},
		Action:         helpOrUnknown,
		OnUsageError:   usageError,
		ExitErrHandler: func(*cli.Context, error) {}, // main reports errors and picks the exit code
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "mkuser:", err)
		os.Exit(accounts.Code(err))
	}
}

// command makes a command that takes min to max (-1: any) arguments.
// urfave/cli reads flags only before the first argument, so an argument that
// looks like a flag is refused rather than silently taken as an argument.
func command(name, args, usage string, min, max int, act action, flags ...cli.Flag) *cli.Command {
	return &cli.Command{Name: name, ArgsUsage: args, Usage: usage, Flags: flags, OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			a := c.Args().Slice()
			for _, s := range a {
				if strings.HasPrefix(s, "-") {
					return usageError(c, fmt.Errorf("%s looks like a flag: flags go before the arguments", s), true)
				}
			}
			if len(a) < min || max >= 0 && len(a) > max {
				return usageError(c, fmt.Errorf("want %s", args), true)
			}
			return act(c, control.FromContext(c), a)
		}}
}

func group(name, usage string, subs ...*cli.Command) *cli.Command {
	return &cli.Command{Name: name, Usage: usage, Subcommands: subs, OnUsageError: usageError, Action: helpOrUnknown}
}

// helpOrUnknown runs when no (sub)command matched: help for none, an error
// for an unknown one; both exit 64.
func helpOrUnknown(c *cli.Context) error {
	if c.NArg() == 0 {
		cli.ShowSubcommandHelp(c)
		return usageError(c, fmt.Errorf("no command given"), false)
	}
	return usageError(c, fmt.Errorf("unknown command %q", c.Args().First()), false)
}

func usageError(c *cli.Context, err error, _ bool) error {
	if c.Command == nil || c.Command.FullName() == c.App.Name {
		return &accounts.Error{Code: sysexits.Usage, Msg: fmt.Sprintf("%v; see mkuser --help", err)}
	}
	return &accounts.Error{Code: sysexits.Usage, Msg: fmt.Sprintf("%s: %v; see %s --help", c.Command.FullName(), err, c.Command.HelpName)}
}

func setPassword(create bool) action {
	return func(c *cli.Context, root control.Root, a []string) error {
		pw, err := accounts.NewPassword(c.Bool("random"), os.Stdin, os.Stderr)
		if err == nil && create {
			var r accounts.Added
			if r, err = accounts.AddUser(root, a[0], pw); r.Reused {
				fmt.Fprintf(os.Stderr, "mkuser: %s gets the mail already in %s\n", r.Address, r.Maildir)
			}
		} else if err == nil {
			err = accounts.SetPassword(root, a[0], pw)
		}
		if c.Bool("random") {
			return printPassword(pw, err)
		}
		return err
	}
}

func printPassword(pw string, err error) error {
	if err == nil {
		fmt.Println(pw)
	}
	return err
}

func deleteUser(c *cli.Context, root control.Root, a []string) error {
	d, err := accounts.DeleteUser(root, a[0], c.Bool("purge"))
	for _, k := range d.Aliases {
		fmt.Fprintf(os.Stderr, "mkuser: warning: alias %s still points to %s; see mkuser alias del\n", k, d.Address)
	}
	if err == nil && d.Maildir != "" && !d.Purged {
		fmt.Fprintf(os.Stderr, "mkuser: kept the mail in %s (mkuser add gives it back to a new user of that name)\n", d.Maildir)
	}
	return err
}

func check(c *cli.Context, root control.Root, a []string) error {
	pw, err := accounts.ReadPassword(os.Stdin, os.Stderr, false)
	if err != nil {
		return err
	}
	if ok, err := accounts.Check(root, a[0], pw); err != nil || ok {
		return err
	}
	return &accounts.Error{Code: 1, Msg: "password does not match"}
}
