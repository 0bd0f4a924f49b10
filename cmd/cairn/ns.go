package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/cairndb/cairn/client"
)

// namespaceJSON is a namespace's configuration as the API writes it.
type namespaceJSON struct {
	Name            string  `json:"name"`
	AlarmWebhook    *string `json:"alarmWebhook"`
	AlarmTimeout    string  `json:"alarmTimeout"`
	AlarmMaxRetries *int    `json:"alarmMaxRetries"`
}

func toNamespaceJSON(c client.NamespaceConfig) namespaceJSON {
	out := namespaceJSON{Name: c.Name, AlarmMaxRetries: c.AlarmMaxRetries}
	if c.AlarmWebhook != "" {
		out.AlarmWebhook = &c.AlarmWebhook
	}
	if c.AlarmTimeout != 0 {
		out.AlarmTimeout = c.AlarmTimeout.String()
	}
	return out
}

func (a *app) printNamespace(c client.NamespaceConfig) {
	if a.jsonOut {
		writeJSONLine(a.stdout, toNamespaceJSON(c))
		return
	}
	retries := "default"
	if c.AlarmMaxRetries != nil {
		retries = strconv.Itoa(*c.AlarmMaxRetries)
	}
	timeout := "default"
	if c.AlarmTimeout != 0 {
		timeout = c.AlarmTimeout.String()
	}
	fmt.Fprintf(a.stdout, "name:              %s\nalarm webhook:     %s\nalarm timeout:     %s\nalarm max retries: %s\n",
		c.Name, dash(c.AlarmWebhook), timeout, retries)
}

// nsArg returns the namespace named by the optional argument, else --ns.
func (a *app) nsArg(pos []string) (*client.Namespace, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	name := a.ns
	if len(pos) == 1 {
		name = pos[0]
	}
	return c.Namespace(name), nil
}

func (a *app) nsGet(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("ns get")
	pos, err := a.parse(cmd, fs, args, 0, 1)
	if err != nil {
		return err
	}
	ns, err := a.nsArg(pos)
	if err != nil {
		return err
	}
	cfg, err := ns.Config(ctx)
	if err != nil {
		return err
	}
	a.printNamespace(cfg)
	return nil
}

// nsSet replaces the configuration: a flag left out takes its default, as
// PUT /v1/ns/{ns} does.
func (a *app) nsSet(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("ns set")
	var cfg client.NamespaceConfig
	fs.StringVar(&cfg.AlarmWebhook, "webhook", "", "absolute http(s) URL due alarms are POSTed to (none: alarms wait)")
	fs.DurationVar(&cfg.AlarmTimeout, "alarm-timeout", 0, "how long a webhook call may take (100ms–5m; default 30s)")
	fs.Func("alarm-max-retries", "retries of a failed delivery before the alarm is dropped (0–100; default 6)", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		cfg.AlarmMaxRetries = &n
		return nil
	})
	pos, err := a.parse(cmd, fs, args, 0, 1)
	if err != nil {
		return err
	}
	ns, err := a.nsArg(pos)
	if err != nil {
		return err
	}
	stored, err := ns.SetConfig(ctx, cfg)
	if err != nil {
		return err
	}
	a.printNamespace(stored)
	return nil
}

func (a *app) nsList(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("ns list")
	if _, err := a.parse(cmd, fs, args, 0, 0); err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	list, err := c.Namespaces(ctx)
	if err != nil {
		return err
	}
	if a.jsonOut {
		out := struct {
			Namespaces []namespaceJSON `json:"namespaces"`
		}{Namespaces: []namespaceJSON{}}
		for _, n := range list {
			out.Namespaces = append(out.Namespaces, toNamespaceJSON(n))
		}
		writeJSONLine(a.stdout, out)
		return nil
	}
	rows := make([][]string, 0, len(list))
	for _, n := range list {
		retries := "-"
		if n.AlarmMaxRetries != nil {
			retries = strconv.Itoa(*n.AlarmMaxRetries)
		}
		timeout := "-"
		if n.AlarmTimeout != 0 {
			timeout = n.AlarmTimeout.String()
		}
		rows = append(rows, []string{n.Name, dash(n.AlarmWebhook), timeout, retries})
	}
	table(a.stdout, []string{"NAMESPACE", "ALARM WEBHOOK", "TIMEOUT", "MAX RETRIES"}, rows)
	return nil
}

func (a *app) objectsList(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("objects list")
	var opts client.ObjectsOptions
	fs.StringVar(&opts.Prefix, "prefix", "", "only names that start with this")
	fs.IntVar(&opts.Limit, "limit", 0, "most objects of one page (server default 1000)")
	fs.StringVar(&opts.Cursor, "cursor", "", "continue after a previous page")
	all := fs.Bool("all", false, "follow the cursor to the last object")
	if _, err := a.parse(cmd, fs, args, 0, 0); err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	ns := c.Namespace(a.ns)
	var objs []client.ObjectInfo
	next := ""
	if *all {
		for o, err := range ns.AllObjects(ctx, opts, a.readOpts()...) {
			if err != nil {
				return err
			}
			objs = append(objs, o)
		}
	} else {
		page, err := ns.Objects(ctx, opts, a.readOpts()...)
		if err != nil {
			return err
		}
		objs, next = page.Objects, page.Cursor
	}
	if a.jsonOut {
		out := struct {
			Objects []client.ObjectInfo `json:"objects"`
			Cursor  *string             `json:"cursor"`
		}{Objects: objs}
		if out.Objects == nil {
			out.Objects = []client.ObjectInfo{}
		}
		if next != "" {
			out.Cursor = &next
		}
		writeJSONLine(a.stdout, out)
		return nil
	}
	rows := make([][]string, 0, len(objs))
	for _, o := range objs {
		rows = append(rows, []string{o.Name, o.ID})
	}
	table(a.stdout, []string{"NAME", "ID"}, rows)
	if next != "" {
		fmt.Fprintf(a.stderr, "more objects: add --cursor %s (or --all)\n", next)
	}
	return nil
}

func (a *app) uniqueID(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("unique-id")
	if _, err := a.parse(cmd, fs, args, 0, 0); err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	obj, err := c.Namespace(a.ns).UniqueID(ctx)
	if err != nil {
		return err
	}
	if a.jsonOut {
		writeJSONLine(a.stdout, client.ObjectInfo{Name: obj.Name(), ID: obj.ID()})
		return nil
	}
	fmt.Fprintln(a.stdout, obj.Name())
	return nil
}
