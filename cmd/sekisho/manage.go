package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sekisho/sekisho/internal/authn/apikey"
	"github.com/sekisho/sekisho/internal/config"
	"github.com/sekisho/sekisho/internal/identity"
	"github.com/sekisho/sekisho/internal/keys"
	"github.com/sekisho/sekisho/internal/oauth"
	"github.com/sekisho/sekisho/internal/revocation"
	"github.com/sekisho/sekisho/internal/store"
)

// stdin is where passwords are read from (tests replace it).
var stdin io.Reader = os.Stdin

// listFlag collects a repeatable or space/comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error {
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' }) {
		*l = append(*l, f)
	}
	return nil
}

// subcommand dispatches "sekisho GROUP VERB ...".
func subcommand(group string, verbs map[string]func(args []string, out io.Writer) error, order []string, summary string) func([]string, io.Writer, io.Writer) error {
	return func(args []string, out, errOut io.Writer) error {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintf(out, "Usage: sekisho %s <%s> --config FILE [flags]\n\n%s\n\nRun 'sekisho %s VERB --help' for a verb's flags.\n", group, strings.Join(order, "|"), summary, group)
			if len(args) == 0 {
				return usagef("%s: a verb is required (%s)", group, strings.Join(order, ", "))
			}
			return nil
		}
		v, ok := verbs[args[0]]
		if !ok {
			return usagef("%s: unknown verb %q (allowed: %s)", group, args[0], strings.Join(order, ", "))
		}
		return v(args[1:], out)
	}
}

// withStore parses the common --config flag plus the verb's own, loads the
// config and opens its store.
func withStore(fs *flag.FlagSet, args []string, nargs int, argName string, fn func(ctx context.Context, cfg *config.Config, st store.Store) error) error {
	cfgPath := fs.String("config", "", "config file whose store to use (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usagef("%s: --config FILE is required", fs.Name())
	}
	if fs.NArg() != nargs {
		if nargs == 0 {
			return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
		}
		return usagef("%s: expected %s", fs.Name(), argName)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return configError{err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(ctx, cfg, st)
}

// notifyServer asks a running server (through its admin API) to deny-list
// what the CLI just revoked. The revocation is already recorded in the store,
// which running servers re-read every 5 seconds; the notice makes it
// immediate.
func notifyServer(cfg *config.Config, out io.Writer, body map[string]string) {
	const later = "running servers apply the revocation from the store within 5 seconds"
	if cfg.Admin.Token == "" || cfg.Admin.Address == "off" {
		fmt.Fprintf(out, "note: no admin.token configured; %s\n", later)
		return
	}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+cfg.Admin.Address+"/admin/revocations", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+cfg.Admin.Token)
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		fmt.Fprintf(out, "note: no server answered at %s (%v); %s\n", cfg.Admin.Address, err, later)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(out, "note: the running server answered %s to the revocation notice; %s\n", resp.Status, later)
		return
	}
	fmt.Fprintln(out, "the running server deny-listed the revoked tokens")
}

// ---- clients ----

func cmdClients(args []string, out, errOut io.Writer) error {
	order := []string{"create", "list", "show", "rotate-secret", "disable", "enable", "delete"}
	return subcommand("clients", map[string]func([]string, io.Writer) error{
		"create": clientsCreate, "list": clientsList, "show": clientsShow, "rotate-secret": clientsRotate,
		"disable": clientsDisable(true), "enable": clientsDisable(false), "delete": clientsDelete,
	}, order, "Manage OAuth clients of the built-in authorization server.")(args, out, errOut)
}

// clientService is the CLI's client management. Its revocations are recorded
// in the store, where running servers pick them up within seconds.
func clientService(cfg *config.Config, st store.Store) (*oauth.ClientService, error) {
	deny, err := revocation.NewDenyList(revocation.Options{})
	if err != nil {
		return nil, err
	}
	o := oauth.ClientServiceOptions{Revoker: &durableRevoker{st: st, deny: deny, log: discardLogger()}}
	if as := cfg.AuthServer; as != nil {
		o.AccessTokenTTL, o.RefreshTokenTTL = as.AccessTokenTTL.D(), as.RefreshTokenTTL.D()
	}
	return oauth.NewClientService(st, o)
}

// withClients is withStore for the clients verbs: it also builds the
// client service on the opened store.
func withClients(fs *flag.FlagSet, args []string, nargs int, argName string, fn func(ctx context.Context, cfg *config.Config, cs *oauth.ClientService) error) error {
	return withStore(fs, args, nargs, argName, func(ctx context.Context, cfg *config.Config, st store.Store) error {
		cs, err := clientService(cfg, st)
		if err != nil {
			return err
		}
		return fn(ctx, cfg, cs)
	})
}

func clientsCreate(args []string, out io.Writer) error {
	fs := newFlags("clients create", "--config FILE --name NAME [flags]", "Register a client. A confidential client's secret is printed once and only its hash is stored.", out)
	var spec oauth.ClientSpec
	var redirects, grants, scopes, auds, postLogout listFlag
	fs.StringVar(&spec.ID, "id", "", "client ID (default: generated)")
	fs.StringVar(&spec.Name, "name", "", "display name shown on the consent page (required)")
	fs.BoolVar(&spec.Public, "public", false, "public client (native app/SPA): no secret, PKCE code flow only")
	fs.Var(&redirects, "redirect-uri", "allowed redirect URI, exact match (repeatable)")
	fs.Var(&postLogout, "post-logout-redirect-uri", "allowed post-logout redirect URI (repeatable)")
	fs.Var(&grants, "grant", "grant type: authorization_code, refresh_token, client_credentials (repeatable)")
	fs.Var(&scopes, "scope", "scope the client may request (repeatable or space-separated)")
	fs.Var(&auds, "audience", "audience its tokens may carry (repeatable)")
	fs.StringVar(&spec.TokenEndpointAuthMethod, "auth-method", "", "client_secret_basic (default), client_secret_post, private_key_jwt, none")
	jwksFile := fs.String("jwks-file", "", "public JWK Set file (private_key_jwt)")
	fs.DurationVar(&spec.AccessTokenTTL, "access-token-ttl", 0, "access token lifetime (default: the server's)")
	fs.DurationVar(&spec.RefreshTokenTTL, "refresh-token-ttl", 0, "refresh token lifetime (default: the server's)")
	return withClients(fs, args, 0, "", func(ctx context.Context, cfg *config.Config, cs *oauth.ClientService) error {
		if spec.Name == "" {
			return usagef("clients create: --name is required")
		}
		spec.RedirectURIs, spec.GrantTypes, spec.Scopes, spec.Audiences, spec.PostLogoutRedirectURIs = redirects, grants, scopes, auds, postLogout
		if *jwksFile != "" {
			b, err := os.ReadFile(*jwksFile)
			if err != nil {
				return usagef("clients create: --jwks-file: %v", err)
			}
			spec.JWKS = b
		}
		info, secret, err := cs.Create(ctx, spec)
		if err != nil {
			return usagef("clients create: %v", err)
		}
		printClient(out, info)
		if secret != "" {
			fmt.Fprintf(out, "client_secret: %s\n\nStore the secret now: it is shown only once.\n", secret)
		}
		return nil
	})
}

func printClient(out io.Writer, c *oauth.ClientInfo) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "client_id:\t%s\nname:\t%s\npublic:\t%v\ngrant_types:\t%s\nscopes:\t%s\naudiences:\t%s\nredirect_uris:\t%s\nauth_method:\t%s\ndisabled:\t%v\n",
		c.ID, c.Name, c.Public, strings.Join(c.GrantTypes, " "), strings.Join(c.Scopes, " "), strings.Join(c.Audiences, " "),
		strings.Join(c.RedirectURIs, " "), c.TokenEndpointAuthMethod, c.Disabled)
	tw.Flush()
}

func clientsList(args []string, out io.Writer) error {
	fs := newFlags("clients list", "--config FILE", "List registered clients.", out)
	return withClients(fs, args, 0, "", func(ctx context.Context, cfg *config.Config, cs *oauth.ClientService) error {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT_ID\tNAME\tPUBLIC\tGRANTS\tDISABLED")
		err := eachPage(ctx, cs.List, func(c oauth.ClientInfo) string { return c.ID }, func(c oauth.ClientInfo) {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%v\n", c.ID, c.Name, c.Public, strings.Join(c.GrantTypes, ","), c.Disabled)
		})
		if err != nil {
			return err
		}
		return tw.Flush()
	})
}

func clientsShow(args []string, out io.Writer) error {
	fs := newFlags("clients show", "--config FILE CLIENT_ID", "Show one client.", out)
	return withClients(fs, args, 1, "CLIENT_ID", func(ctx context.Context, cfg *config.Config, cs *oauth.ClientService) error {
		c, err := cs.Get(ctx, fs.Arg(0))
		if err != nil {
			return notFound("client", fs.Arg(0), err)
		}
		printClient(out, c)
		return nil
	})
}

func notFound(kind, id string, err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, identity.ErrUserNotFound) {
		return usagef("%s %q not found", kind, id)
	}
	return err
}

func clientsRotate(args []string, out io.Writer) error {
	fs := newFlags("clients rotate-secret", "--config FILE CLIENT_ID", "Replace a confidential client's secret; the old one stops working at once. The new secret is printed once.", out)
	return withClients(fs, args, 1, "CLIENT_ID", func(ctx context.Context, cfg *config.Config, cs *oauth.ClientService) error {
		secret, err := cs.RotateSecret(ctx, fs.Arg(0))
		if err != nil {
			return notFound("client", fs.Arg(0), err)
		}
		fmt.Fprintf(out, "client_secret: %s\n\nStore the secret now: it is shown only once.\n", secret)
		return nil
	})
}

func clientsDisable(disable bool) func([]string, io.Writer) error {
	verb := map[bool]string{true: "disable", false: "enable"}[disable]
	return func(args []string, out io.Writer) error {
		fs := newFlags("clients "+verb, "--config FILE CLIENT_ID", map[bool]string{true: "Disable a client and revoke its tokens.", false: "Enable a disabled client."}[disable], out)
		return withClients(fs, args, 1, "CLIENT_ID", func(ctx context.Context, cfg *config.Config, cs *oauth.ClientService) error {
			if err := cs.SetDisabled(ctx, fs.Arg(0), disable); err != nil {
				return notFound("client", fs.Arg(0), err)
			}
			fmt.Fprintf(out, "client %s %sd\n", fs.Arg(0), verb)
			if disable {
				notifyServer(cfg, out, map[string]string{"client_id": fs.Arg(0)})
			}
			return nil
		})
	}
}

func clientsDelete(args []string, out io.Writer) error {
	fs := newFlags("clients delete", "--config FILE CLIENT_ID", "Delete a client, its consents and refresh tokens, and revoke its access tokens.", out)
	return withClients(fs, args, 1, "CLIENT_ID", func(ctx context.Context, cfg *config.Config, cs *oauth.ClientService) error {
		if err := cs.Delete(ctx, fs.Arg(0)); err != nil {
			return notFound("client", fs.Arg(0), err)
		}
		fmt.Fprintf(out, "client %s deleted\n", fs.Arg(0))
		notifyServer(cfg, out, map[string]string{"client_id": fs.Arg(0)})
		return nil
	})
}

// ---- users ----

func cmdUsers(args []string, out, errOut io.Writer) error {
	order := []string{"create", "list", "disable", "enable", "set-password"}
	return subcommand("users", map[string]func([]string, io.Writer) error{
		"create": usersCreate, "list": usersList, "disable": usersDisable(true), "enable": usersDisable(false), "set-password": usersSetPassword,
	}, order, "Manage users of the built-in authorization server. Passwords are read from standard input (one line) and stored as argon2id hashes.")(args, out, errOut)
}

func readPassword(out io.Writer) (string, error) {
	fmt.Fprint(out, "password (read from standard input): ")
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	fmt.Fprintln(out)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usagef("no password given on standard input")
	}
	return line, nil
}

// userService is the CLI's user management. Disabling a user revokes their
// grants through the store-backed revoker, which running servers pick up.
func userService(st store.Store) (*identity.UserService, error) {
	return userServiceFor(nil, st)
}

func userServiceFor(cfg *config.Config, st store.Store) (*identity.UserService, error) {
	o := identity.UserOptions{}
	if cfg != nil {
		cs, err := clientService(cfg, st)
		if err != nil {
			return nil, err
		}
		o.OnUserDisabled = func(userID string) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := cs.RevokeSubject(ctx, userID); err != nil {
				fmt.Fprintf(os.Stderr, "sekisho: revoking the user's tokens failed: %v\n", err)
			}
		}
	}
	return identity.NewUserService(st, o)
}

func usersCreate(args []string, out io.Writer) error {
	fs := newFlags("users create", "--config FILE --username NAME [--email E] [--name N] < password", "Create a user; the password is read from standard input.", out)
	username := fs.String("username", "", "login name (required)")
	email := fs.String("email", "", "email address")
	name := fs.String("name", "", "display name")
	return withStore(fs, args, 0, "", func(ctx context.Context, cfg *config.Config, st store.Store) error {
		if *username == "" {
			return usagef("users create: --username is required")
		}
		pw, err := readPassword(out)
		if err != nil {
			return err
		}
		us, err := userService(st)
		if err != nil {
			return err
		}
		u, err := us.Create(ctx, *username, pw, *email, *name)
		if err != nil {
			return usagef("users create: %v", err)
		}
		fmt.Fprintf(out, "user %s created (id %s)\n", u.Username, u.ID)
		return nil
	})
}

func usersList(args []string, out io.Writer) error {
	fs := newFlags("users list", "--config FILE", "List users.", out)
	return withStore(fs, args, 0, "", func(ctx context.Context, cfg *config.Config, st store.Store) error {
		us, err := userService(st)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSERNAME\tEMAIL\tDISABLED\tCREATED")
		err = eachPage(ctx, us.List, func(u store.User) string { return u.ID }, func(u store.User) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", u.ID, u.Username, u.Email, u.Disabled, u.CreatedAt.Format(time.RFC3339))
		})
		if err != nil {
			return err
		}
		return tw.Flush()
	})
}

func usersDisable(disable bool) func([]string, io.Writer) error {
	verb := map[bool]string{true: "disable", false: "enable"}[disable]
	return func(args []string, out io.Writer) error {
		fs := newFlags("users "+verb, "--config FILE USER", map[bool]string{true: "Disable a user (by id or username): ends their sessions and revokes their tokens.", false: "Enable a disabled user."}[disable], out)
		return withStore(fs, args, 1, "USER", func(ctx context.Context, cfg *config.Config, st store.Store) error {
			us, err := userServiceFor(cfg, st)
			if err != nil {
				return err
			}
			var u *store.User
			if disable {
				u, err = us.Disable(ctx, fs.Arg(0))
			} else {
				u, err = us.Enable(ctx, fs.Arg(0))
			}
			if err != nil {
				return notFound("user", fs.Arg(0), err)
			}
			fmt.Fprintf(out, "user %s %sd\n", u.Username, verb)
			if disable {
				notifyServer(cfg, out, map[string]string{"user_id": u.ID})
			}
			return nil
		})
	}
}

func usersSetPassword(args []string, out io.Writer) error {
	fs := newFlags("users set-password", "--config FILE USER < password", "Set a user's password (read from standard input); their sessions end.", out)
	return withStore(fs, args, 1, "USER", func(ctx context.Context, cfg *config.Config, st store.Store) error {
		pw, err := readPassword(out)
		if err != nil {
			return err
		}
		us, err := userService(st)
		if err != nil {
			return err
		}
		u, err := us.SetPassword(ctx, fs.Arg(0), pw)
		if err != nil {
			if errors.Is(err, identity.ErrUserNotFound) {
				return notFound("user", fs.Arg(0), err)
			}
			return usagef("users set-password: %v", err)
		}
		fmt.Fprintf(out, "password of %s changed; their sessions were ended\n", u.Username)
		return nil
	})
}

// ---- keys ----

func cmdKeys(args []string, out, errOut io.Writer) error {
	return subcommand("keys", map[string]func([]string, io.Writer) error{"list": keysList, "rotate": keysRotate},
		[]string{"list", "rotate"}, "Inspect and rotate the authorization server's signing keys.")(args, out, errOut)
}

func keyManager(cfg *config.Config, st store.Store) (*keys.Manager, error) {
	as := cfg.AuthServer
	if as == nil || !as.Enabled {
		return nil, usagef("keys: authorization_server is not enabled in %s", cfg.File)
	}
	master, err := config.DecodeKey(as.MasterKey)
	if err != nil {
		return nil, configError{cfg.ErrorAt("authorization_server.master_key", "%v", err)}
	}
	return keys.NewManager(st, keys.Options{MasterKey: master, Alg: as.SigningAlg, RotateEvery: as.RotateEvery.D(), Logger: discardLogger()})
}

func keysList(args []string, out io.Writer) error {
	fs := newFlags("keys list", "--config FILE", "List signing keys and their schedule.", out)
	return withStore(fs, args, 0, "", func(ctx context.Context, cfg *config.Config, st store.Store) error {
		m, err := keyManager(cfg, st)
		if err != nil {
			return err
		}
		list, err := m.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KID\tALG\tSTATE\tACTIVATE_AT\tRETIRE_AT\tEXPIRE_AT")
		for _, k := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Alg, k.State, k.ActivateAt.Format(time.RFC3339), k.RetireAt.Format(time.RFC3339), k.ExpireAt.Format(time.RFC3339))
		}
		return tw.Flush()
	})
}

func keysRotate(args []string, out io.Writer) error {
	fs := newFlags("keys rotate", "--config FILE [--immediate] [--revoke-previous]", "Create a new signing key. By default it is published now and signs after the publish-ahead window, so verifiers learn it first.", out)
	immediate := fs.Bool("immediate", false, "sign with the new key at once (verifiers with a cached key set may refuse new tokens until they refetch)")
	revoke := fs.Bool("revoke-previous", false, "also withdraw the previous key (key compromise: tokens it signed stop verifying)")
	return withStore(fs, args, 0, "", func(ctx context.Context, cfg *config.Config, st store.Store) error {
		m, err := keyManager(cfg, st)
		if err != nil {
			return err
		}
		var opts []keys.RotateOption
		if *immediate {
			opts = append(opts, keys.Immediate())
		}
		if *revoke {
			opts = append(opts, keys.RevokePrevious())
		}
		k, err := m.Rotate(ctx, opts...)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "new key %s (%s) published; signs from %s. Running servers pick it up within a minute.\n", k.ID, k.Alg, k.ActivateAt.Format(time.RFC3339))
		return nil
	})
}

// ---- apikeys ----

func cmdAPIKeys(args []string, out, errOut io.Writer) error {
	return subcommand("apikeys", map[string]func([]string, io.Writer) error{"create": apikeysCreate, "list": apikeysList, "revoke": apikeysRevoke},
		[]string{"create", "list", "revoke"}, "Manage gateway API keys. A key is shown once; only its SHA-256 is stored.")(args, out, errOut)
}

func apikeysCreate(args []string, out io.Writer) error {
	fs := newFlags("apikeys create", "--config FILE --consumer NAME [--scope S] [--expires-in D]", "Create an API key bound to a consumer, with scopes and an optional expiry. The key is printed once.", out)
	consumer := fs.String("consumer", "", "who the key belongs to (required; becomes the identity's subject)")
	var scopes listFlag
	fs.Var(&scopes, "scope", "scope granted to the key (repeatable or space-separated)")
	expiresIn := fs.Duration("expires-in", 0, "expiry from now, e.g. 720h (default: never)")
	return withStore(fs, args, 0, "", func(ctx context.Context, cfg *config.Config, st store.Store) error {
		if *consumer == "" {
			return usagef("apikeys create: --consumer is required")
		}
		if *expiresIn < 0 {
			return usagef("apikeys create: --expires-in must be positive")
		}
		var exp *time.Time
		now := time.Now().UTC()
		if *expiresIn > 0 {
			t := now.Add(*expiresIn)
			exp = &t
		}
		key, rec, err := apikey.Create(ctx, apiKeyStore{st}, rand.Reader, *consumer, scopes, exp, now)
		if err != nil {
			return usagef("apikeys create: %v", err)
		}
		fmt.Fprintf(out, "id:       %s\nconsumer: %s\nscopes:   %s\n", rec.ID, rec.Consumer, strings.Join(rec.Scopes, " "))
		if exp != nil {
			fmt.Fprintf(out, "expires:  %s\n", exp.Format(time.RFC3339))
		}
		fmt.Fprintf(out, "key:      %s\n\nStore the key now: it is shown only once. Send it as 'X-API-Key: <key>'.\n", key)
		return nil
	})
}

func apikeysList(args []string, out io.Writer) error {
	fs := newFlags("apikeys list", "--config FILE", "List API keys (ids only; keys are never stored).", out)
	return withStore(fs, args, 0, "", func(ctx context.Context, cfg *config.Config, st store.Store) error {
		list, err := apiKeyStore{st}.ListAPIKeys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCONSUMER\tSCOPES\tEXPIRES\tREVOKED")
		for _, k := range list {
			exp := "never"
			if k.ExpiresAt != nil {
				exp = k.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", k.ID, k.Consumer, strings.Join(k.Scopes, " "), exp, k.Revoked)
		}
		return tw.Flush()
	})
}

func apikeysRevoke(args []string, out io.Writer) error {
	fs := newFlags("apikeys revoke", "--config FILE ID", "Revoke an API key. Running gateways stop accepting it within their API key cache TTL (30 s).", out)
	return withStore(fs, args, 1, "ID", func(ctx context.Context, cfg *config.Config, st store.Store) error {
		if err := (apiKeyStore{st}).RevokeAPIKey(ctx, fs.Arg(0)); err != nil {
			if errors.Is(err, apikey.ErrNotFound) {
				return usagef("apikeys revoke: key %q not found", fs.Arg(0))
			}
			return err
		}
		fmt.Fprintf(out, "API key %s revoked\n", fs.Arg(0))
		return nil
	})
}
