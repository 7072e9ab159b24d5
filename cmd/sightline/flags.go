package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// newFlagSet returns a FlagSet for a subcommand that reports errors instead
// of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sightline "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// setUsage makes -h list forms, the ways to call a command (after
// "sightline "), before its flags: a role's command also manages a running
// role, which its flags alone would not tell.
func setUsage(fs *flag.FlagSet, forms ...string) {
	fs.Usage = func() {
		for i, f := range forms {
			prefix := "       sightline "
			if i == 0 {
				prefix = "Usage: sightline "
			}
			fmt.Fprintln(fs.Output(), prefix+f)
		}
		fs.PrintDefaults()
	}
}

// parseFlags parses args, then fills every flag not given on the command line
// from the environment (SIGHTLINE_ plus the flag name in upper snake case:
// --smtp-addr is SIGHTLINE_SMTP_ADDR), then from the config file named by
// --config or SIGHTLINE_CONFIG, if any. The file holds "name = value" lines
// with flag names; blank lines and lines starting with # are ignored.
// Precedence is command line, environment, file, default.
func parseFlags(fs *flag.FlagSet, args []string, getenv env) error {
	var configFile string
	if fs.Lookup("config") == nil {
		fs.StringVar(&configFile, "config", "", "configuration `file` of name = value lines (env SIGHTLINE_CONFIG)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0)))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		key := envName(f.Name)
		if v := getenv(key); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", key, v, err))
			}
			set[f.Name] = true
		}
	})
	if len(errs) > 0 {
		return usageError("bad environment: " + strings.Join(errs, "; "))
	}

	if f := fs.Lookup("config"); f != nil && f.Value.String() != "" {
		return applyConfigFile(fs, f.Value.String(), set)
	}
	return nil
}

func envName(flagName string) string {
	return "SIGHTLINE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func applyConfigFile(fs *flag.FlagSet, path string, set map[string]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return usageError(fmt.Sprintf("config file: %v", err))
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return usageError(fmt.Sprintf("%s:%d: want name = value, got %q", path, n, line))
		}
		name, value = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(value), `"`)
		fl := fs.Lookup(name)
		if fl == nil || name == "config" {
			return usageError(fmt.Sprintf("%s:%d: unknown setting %q for %s", path, n, name, fs.Name()))
		}
		if set[name] {
			continue
		}
		if err := fl.Value.Set(value); err != nil {
			return usageError(fmt.Sprintf("%s:%d: %s: %v", path, n, name, err))
		}
	}
	if err := sc.Err(); err != nil {
		return usageError(fmt.Sprintf("config file %s: %v", path, err))
	}
	return nil
}
