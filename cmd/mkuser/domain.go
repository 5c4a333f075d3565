package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/postkit/postkit/accounts"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/domaincheck"
)

// dnsFlags are the flags of domain dns and domain check.
func dnsFlags() []cli.Flag {
	return []cli.Flag{
		control.HostnameFlag(),
		&cli.StringSliceFlag{Name: "address", Usage: "this server's public `IP` address (repeatable; default: the host name's addresses in DNS)"},
		&cli.StringFlag{Name: "dns", Usage: "DNS resolver `ADDR`[:PORT] (default: etc/dns, else /etc/resolv.conf)"},
	}
}

func domainCommands() *cli.Command {
	return group("domain", "manage local domains, their DKIM keys and DNS records",
		command("add", "DOMAIN", "make a domain local before it has users (etc/domains)", 1, 1, func(c *cli.Context, root control.Root, a []string) error {
			_, err := accounts.AddDomain(root, a[0])
			return err
		}),
		command("del", "DOMAIN", "remove a domain that has no users or aliases left", 1, 1, func(c *cli.Context, root control.Root, a []string) error {
			d, err := accounts.DeleteDomain(root, a[0])
			if dir, ok := accounts.DKIMKeyDirExists(root, d); err == nil && ok {
				fmt.Fprintf(os.Stderr, "mkuser: kept the DKIM keys in %s\n", dir)
			}
			return err
		}),
		command("list", "", "list local domains: name, users, aliases, DKIM keys", 0, 0, func(c *cli.Context, root control.Root, a []string) error {
			list, err := accounts.ListDomains(root)
			for _, d := range list {
				fmt.Printf("%s\tusers=%d aliases=%d listed=%v dkim=%s\n", d.Name, d.Users, d.Aliases, d.Listed, strings.Join(d.DKIM, ","))
			}
			return err
		}),
		command("dkim-keygen", "DOMAIN", "make the domain's Ed25519 and RSA DKIM keys", 1, 1, keygen,
			&cli.BoolFlag{Name: "force", Usage: "replace existing keys"}),
		command("dns", "DOMAIN", "print the DNS records the domain needs", 1, 1, printRecords, dnsFlags()...),
		command("check", "DOMAIN", "check DNS, TLS certificate and block lists: exit 0 all good, 1 problems", 1, 1, checkDomain, dnsFlags()...),
	)
}

func keygen(c *cli.Context, root control.Root, a []string) error {
	keys, created, err := accounts.GenerateDKIM(root, a[0], c.Bool("force"))
	if err != nil {
		return err
	}
	for _, k := range keys {
		state := "kept"
		for _, alg := range created {
			if alg == k.Algorithm {
				state = "new"
			}
		}
		fmt.Printf("%s\t%s\tselector %s\t%s\n", k.Algorithm, state, k.Selector, k.Path)
	}
	if len(created) > 0 {
		fmt.Fprintf(os.Stderr, "mkuser: publish the records of mkuser domain dns %s before sending mail\n", keys[0].Domain)
	}
	return nil
}

func loadCheck(c *cli.Context, root control.Root, domain string) (*domaincheck.Config, error) {
	d, err := accounts.LocalDomain(root, domain)
	if err != nil {
		return nil, err
	}
	return domaincheck.Load(root, d, c.String("hostname"), c.StringSlice("address"), c.String("dns"))
}

func printRecords(c *cli.Context, root control.Root, a []string) error {
	cfg, err := loadCheck(c, root, a[0])
	if err != nil {
		return err
	}
	recs, notes, err := domaincheck.Records(context.Background(), cfg)
	for _, n := range notes {
		fmt.Fprintln(os.Stderr, "mkuser:", n)
	}
	for _, r := range recs {
		fmt.Printf("; %s\n%s\n", r.Comment, r)
	}
	return err
}

func checkDomain(c *cli.Context, root control.Root, a []string) error {
	cfg, err := loadCheck(c, root, a[0])
	if err != nil {
		return err
	}
	problems := 0
	for _, f := range domaincheck.Check(context.Background(), cfg) {
		if f.OK {
			fmt.Printf("ok    %-8s %s\n", f.Check, f.Text)
			continue
		}
		problems++
		fmt.Printf("FAIL  %-8s %s\n      fix: %s\n", f.Check, f.Text, f.Fix)
	}
	if problems > 0 {
		return &accounts.Error{Code: 1, Msg: fmt.Sprintf("%s: %d problems found", cfg.Domain, problems)}
	}
	return nil
}
