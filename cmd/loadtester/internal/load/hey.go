/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package load

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

// heyUserAgent is what hey sends; load tests are often told apart from real traffic by the
// "hey/" prefix, so the built-in generator keeps it and says who it really is.
const heyUserAgent = "hey/0.0.1 (herald-loadtester)"

// heyFlags lists the hey flags ParseHey understands, for error messages.
const heyFlags = "-n -c -q -z -m -H -d -D -T -A -a -U -t -o -x -h2 -host -cpus " +
	"-disable-compression -disable-keepalive -disable-redirects"

var (
	heyHeader = regexp.MustCompile(`^([\w-]+):\s*(.+)$`)
	heyAuth   = regexp.MustCompile(`^(.+):([^\s].+)$`)
)

// IsHey reports whether the first word of a command names the hey binary ("hey" or a path
// ending in "/hey").
func IsHey(argv0 string) bool {
	return argv0 == "hey" || (strings.Contains(argv0, "/") && path.Base(argv0) == "hey")
}

// ParseHey turns the arguments of a hey command line (without "hey" itself) into a Spec
// with hey's meaning: -q is the rate of each worker, so the load's rate is q×c; -z wins
// over -n; defaults are -c 50, -n 200, -t 20 and Content-Type text/html. Flags must come
// before the URL, as hey requires; unlike hey, anything after the URL is an error instead
// of being ignored, and so is an unknown flag.
func ParseHey(args []string) (Spec, error) {
	fs := flag.NewFlagSet("hey", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, never printed
	var (
		method      = fs.String("m", http.MethodGet, "")
		deprecatedH = fs.String("h", "", "")
		body        = fs.String("d", "", "")
		bodyFile    = fs.String("D", "", "")
		accept      = fs.String("A", "", "")
		contentType = fs.String("T", "text/html", "")
		auth        = fs.String("a", "", "")
		host        = fs.String("host", "", "")
		userAgent   = fs.String("U", "", "")
		output      = fs.String("o", "", "")
		workers     = fs.Int("c", 50, "")
		requests    = fs.Int("n", 200, "")
		perWorker   = fs.Float64("q", 0, "")
		timeout     = fs.Int("t", 20, "")
		duration    = fs.Duration("z", 0, "")
		h2          = fs.Bool("h2", false, "")
		_           = fs.Int("cpus", 0, "") // the Go runtime decides; accepted for compatibility
		noGzip      = fs.Bool("disable-compression", false, "")
		noKeepAlive = fs.Bool("disable-keepalive", false, "")
		noRedirects = fs.Bool("disable-redirects", false, "")
		proxy       = fs.String("x", "", "")
		headers     headerList
	)
	fs.Var(&headers, "H", "")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Spec{}, errors.New("hey: -help asks for usage, not for a load")
		}
		return Spec{}, fmt.Errorf("hey: %w (supported flags: %s)", err, heyFlags)
	}
	switch fs.NArg() {
	case 0:
		return Spec{}, errors.New("hey: the URL to load is missing")
	case 1:
	default:
		return Spec{}, fmt.Errorf("hey: unexpected arguments after the URL: %q (flags must come before the URL)", fs.Args()[1:])
	}

	var errs []error
	if *deprecatedH != "" {
		errs = append(errs, errors.New("hey: -h is deprecated, use -H \"Name: value\""))
	}
	if *output != "" && *output != "csv" {
		errs = append(errs, fmt.Errorf("hey: -o %q: the only output type is csv", *output))
	}
	if *duration > 0 {
		if *workers < 1 {
			errs = append(errs, errors.New("hey: -c cannot be smaller than 1"))
		}
	} else {
		if *requests < 1 || *workers < 1 {
			errs = append(errs, errors.New("hey: -n and -c cannot be smaller than 1"))
		} else if *requests < *workers {
			errs = append(errs, errors.New("hey: -n cannot be less than -c"))
		}
	}
	if *perWorker < 0 {
		errs = append(errs, errors.New("hey: -q cannot be negative"))
	}
	if *timeout < 0 {
		errs = append(errs, errors.New("hey: -t cannot be negative"))
	}

	s := Spec{
		URL:                fs.Arg(0),
		Method:             strings.ToUpper(*method),
		Header:             http.Header{},
		Host:               *host,
		BodyFile:           *bodyFile,
		Concurrency:        *workers,
		Rate:               *perWorker * float64(*workers),
		RequestTimeout:     time.Duration(*timeout) * time.Second,
		HTTP2:              *h2,
		DisableKeepAlives:  *noKeepAlive,
		DisableCompression: *noGzip,
		DisableRedirects:   *noRedirects,
	}
	if *body != "" {
		s.Body = []byte(*body)
	}
	if *duration > 0 {
		s.Duration = *duration
	} else {
		s.Requests = *requests
	}
	s.Header.Set("Content-Type", *contentType)
	for _, h := range headers {
		m := heyHeader.FindStringSubmatch(h)
		if m == nil {
			errs = append(errs, fmt.Errorf("hey: -H %q must look like \"Name: value\"", h))
			continue
		}
		s.Header.Set(m[1], m[2])
	}
	if *accept != "" {
		s.Header.Set("Accept", *accept)
	}
	ua := heyUserAgent
	if given := s.Header.Get("User-Agent"); given != "" {
		ua = given + " " + heyUserAgent
	}
	if *userAgent != "" {
		ua = *userAgent + " " + heyUserAgent
	}
	s.Header.Set("User-Agent", ua)
	if *auth != "" {
		m := heyAuth.FindStringSubmatch(*auth)
		if m == nil {
			errs = append(errs, errors.New("hey: -a must look like user:password"))
		} else {
			s.Username, s.Password = m[1], m[2]
		}
	}
	if *proxy != "" {
		s.Proxy = *proxy
		if !strings.Contains(s.Proxy, "://") { // hey documents host:port
			s.Proxy = "http://" + s.Proxy
		}
	}
	if err := s.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("hey: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// headerList collects repeated -H flags.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, ", ") }

func (h *headerList) Set(v string) error {
	*h = append(*h, v)
	return nil
}
