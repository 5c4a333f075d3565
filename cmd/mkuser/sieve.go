package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/postkit/postkit/accounts"
	"github.com/postkit/postkit/control"
)

// sieveCommand is mkuser sieve: a user's Sieve scripts (package accounts,
// postkit-sieve(5)).
func sieveCommand() *cli.Command {
	return group("sieve", "manage a user's Sieve filter scripts",
		command("put", "ADDRESS NAME", "check a script from standard input and store it", 2, 2, func(c *cli.Context, root control.Root, a []string) error {
			if err := accounts.PutSieveScript(root, a[0], a[1], os.Stdin); err != nil || !c.Bool("activate") {
				return err
			}
			return accounts.ActivateSieveScript(root, a[0], a[1])
		}, &cli.BoolFlag{Name: "activate", Usage: "also make it the active script"}),
		command("get", "ADDRESS NAME", "print a script", 2, 2, func(c *cli.Context, root control.Root, a []string) error {
			src, err := accounts.GetSieveScript(root, a[0], a[1])
			if err == nil {
				_, err = os.Stdout.Write(src)
			}
			return err
		}),
		command("list", "ADDRESS", "list scripts; the active one is followed by a tab and \"active\"", 1, 1, func(c *cli.Context, root control.Root, a []string) error {
			list, err := accounts.ListSieveScripts(root, a[0])
			for _, s := range list {
				if s.Active {
					fmt.Printf("%s\tactive\n", s.Name)
				} else {
					fmt.Println(s.Name)
				}
			}
			return err
		}),
		command("activate", "ADDRESS NAME", "make a script the one deliver runs", 2, 2, func(c *cli.Context, root control.Root, a []string) error {
			return accounts.ActivateSieveScript(root, a[0], a[1])
		}),
		command("deactivate", "ADDRESS", "run no script for the user", 1, 1, func(c *cli.Context, root control.Root, a []string) error {
			return accounts.ActivateSieveScript(root, a[0], "")
		}),
		command("del", "ADDRESS NAME", "delete a script that is not active", 2, 2, func(c *cli.Context, root control.Root, a []string) error {
			return accounts.DeleteSieveScript(root, a[0], a[1])
		}))
}
