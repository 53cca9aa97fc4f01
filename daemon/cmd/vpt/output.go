package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/client"
)

// column is one column of a table of T.
type column[T any] struct {
	header string
	value  func(T) string
}

func col[T any](header string, value func(T) string) column[T] {
	return column[T]{header, value}
}

// printList writes items in the format asked: a table of cols, or the
// items as JSON or YAML.
func printList[T any](w io.Writer, format string, items []T, cols ...column[T]) error {
	if items == nil {
		items = []T{}
	}
	switch format {
	case "json":
		return printJSON(w, items)
	case "yaml":
		return printYAML(w, items)
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		hs := make([]string, len(cols))
		for i, c := range cols {
			hs[i] = c.header
		}
		fmt.Fprintln(tw, strings.Join(hs, "\t"))
		for _, it := range items {
			vs := make([]string, len(cols))
			for i, c := range cols {
				vs[i] = c.value(it)
				if vs[i] == "" {
					vs[i] = "-"
				}
			}
			fmt.Fprintln(tw, strings.Join(vs, "\t"))
		}
		return tw.Flush()
	}
	return virtplane.Errorf(virtplane.ErrInvalidArgument, "output format %q: table, json or yaml", format)
}

// printOne writes one object: as a one-row table, or as JSON or YAML.
func printOne[T any](w io.Writer, format string, item T, cols ...column[T]) error {
	switch format {
	case "json":
		return printJSON(w, item)
	case "yaml":
		return printYAML(w, item)
	}
	return printList(w, format, []T{item}, cols...)
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "json: %v", err)
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func printJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "json: %v", err)
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// printYAML writes v as YAML with the fields in the order of its JSON form
// (the API's names and order).
func printYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "yaml: %v", err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "yaml: %v", err)
	}
	blockStyle(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "yaml: %v", err)
	}
	return enc.Close()
}

// blockStyle turns the flow style of parsed JSON into YAML's block style.
func blockStyle(n *yaml.Node) {
	if n.Style == yaml.FlowStyle {
		n.Style = 0
	}
	if n.Kind == yaml.ScalarNode && n.Style == yaml.DoubleQuotedStyle && n.Tag == "!!str" {
		n.Style = 0
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

func itoa[T ~int | ~int64](v T) string { return fmt.Sprint(v) }

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func join(s []string) string { return strings.Join(s, ",") }

// pageFlags binds the --limit and --after of a paged list of noun (runs,
// deliveries, entries).
func pageFlags(cmd *cobra.Command, after *string, limit *int, noun string) {
	cmd.Flags().IntVar(limit, "limit", 100, noun+" at most")
	cmd.Flags().StringVar(after, "after", "", "the "+noun+" after this one (the ID a previous list printed on stderr)")
}

// printPage prints one page of a list, and on stderr the --after that asks
// for the next one.
func printPage[T any](cmd *cobra.Command, format, noun string, p client.Page[T], cols ...column[T]) error {
	if p.Next != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "more %s: --after %s\n", noun, p.Next)
	}
	return printList(cmd.OutOrStdout(), format, p.Items, cols...)
}
