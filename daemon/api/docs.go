package api

import (
	"html/template"
	"net/http"
	"sort"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// docsPage renders the OpenAPI document as one HTML page on the server:
// no scripts, no CDN, so it works on an air-gapped host.
var docsPage = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} API</title>
<style>
body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2.5rem}
.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;font-family:monospace}
.GET{color:#1a7f37}.POST{color:#0550ae}.PUT{color:#9a6700}.DELETE{color:#cf222e}
code,.path{font-family:monospace}table{border-collapse:collapse;margin:.4rem 0}
td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top;font-size:.92rem}
</style></head><body>
<h1>{{.Title}} API <small>{{.Version}}</small></h1>
<p>{{.Description}}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1), <a href="/openapi.yaml">/openapi.yaml</a>.
Events: <code>GET /v1/events</code> upgrades to a WebSocket and sends one JSON event per message
(<code>type</code>, <code>action</code>, <code>id</code>, <code>state</code>, <code>progress</code>), only about objects the caller may see.
Metrics: <a href="/metrics">/metrics</a> (Prometheus).</p>
{{range .Tags}}<h2>{{.Name}}</h2>
{{range .Ops}}<div class="op" id="{{.ID}}"><span class="m {{.Method}}">{{.Method}}</span> <span class="path">{{.Path}}</span> — {{.Summary}}
{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Params}}<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>
{{range .Params}}<tr><td><code>{{.Name}}</code>{{if .Required}} *{{end}}</td><td>{{.In}}</td><td>{{.Type}}</td><td>{{.Doc}}</td></tr>{{end}}</table>{{end}}
{{if .Body}}<p>Body: <a href="#schema-{{.Body}}">{{.Body}}</a></p>{{end}}
<p>Responses: {{range .Responses}}<code>{{.}}</code> {{end}}</p></div>{{end}}{{end}}
<h2>Schemas</h2>
{{range .Schemas}}<h3 id="schema-{{.Name}}">{{.Name}}</h3><table><tr><th>field</th><th>type</th><th>description</th></tr>
{{range .Fields}}<tr><td><code>{{.Name}}</code>{{if .Required}} *{{end}}</td><td>{{.Type}}</td><td>{{.Doc}}</td></tr>{{end}}</table>{{end}}
<p>Errors are RFC 9457 problem documents (<code>application/problem+json</code>); <code>errors[].location</code> names the field at fault.</p>
</body></html>`))

type docParam struct {
	Name, In, Type, Doc string
	Required            bool
}

type docOp struct {
	ID, Method, Path, Summary, Description, Body string
	Params                                       []docParam
	Responses                                    []string
}

type docTag struct {
	Name string
	Ops  []docOp
}

type docSchema struct {
	Name   string
	Fields []docParam
}

func schemaType(s *huma.Schema) string {
	if s == nil {
		return ""
	}
	if s.Ref != "" {
		return strings.TrimPrefix(s.Ref, "#/components/schemas/")
	}
	t := s.Type
	if t == "array" && s.Items != nil {
		return "[]" + schemaType(s.Items)
	}
	if len(s.Enum) > 0 {
		var vals []string
		for _, e := range s.Enum {
			if v, ok := e.(string); ok {
				vals = append(vals, v)
			}
		}
		t += " (" + strings.Join(vals, ", ") + ")"
	}
	if s.Format != "" {
		t += " " + s.Format
	}
	return t
}

func (s *Server) docs(w http.ResponseWriter, r *http.Request) {
	doc := s.api.OpenAPI()
	byTag := map[string]*docTag{}
	var paths []string
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		item := doc.Paths[p]
		for _, mo := range []struct {
			m  string
			op *huma.Operation
		}{{"GET", item.Get}, {"POST", item.Post}, {"PUT", item.Put}, {"PATCH", item.Patch}, {"DELETE", item.Delete}} {
			if mo.op == nil {
				continue
			}
			op := docOp{ID: mo.op.OperationID, Method: mo.m, Path: p, Summary: mo.op.Summary, Description: mo.op.Description}
			for _, prm := range mo.op.Parameters {
				op.Params = append(op.Params, docParam{Name: prm.Name, In: prm.In, Type: schemaType(prm.Schema), Doc: prm.Description, Required: prm.Required})
			}
			if rb := mo.op.RequestBody; rb != nil {
				if c, ok := rb.Content["application/json"]; ok {
					op.Body = schemaType(c.Schema)
				}
			}
			for code := range mo.op.Responses {
				op.Responses = append(op.Responses, code)
			}
			sort.Strings(op.Responses)
			tag := "other"
			if len(mo.op.Tags) > 0 {
				tag = mo.op.Tags[0]
			}
			if byTag[tag] == nil {
				byTag[tag] = &docTag{Name: tag}
			}
			byTag[tag].Ops = append(byTag[tag].Ops, op)
		}
	}
	var tags []docTag
	for _, t := range byTag {
		tags = append(tags, *t)
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].Name < tags[j].Name })
	var schemas []docSchema
	for name, sc := range doc.Components.Schemas.Map() {
		ds := docSchema{Name: name}
		req := map[string]bool{}
		for _, r := range sc.Required {
			req[r] = true
		}
		for fname, f := range sc.Properties {
			if fname == "$schema" {
				continue
			}
			ds.Fields = append(ds.Fields, docParam{Name: fname, Type: schemaType(f), Doc: f.Description, Required: req[fname]})
		}
		sort.Slice(ds.Fields, func(i, j int) bool { return ds.Fields[i].Name < ds.Fields[j].Name })
		schemas = append(schemas, ds)
	}
	sort.Slice(schemas, func(i, j int) bool { return schemas[i].Name < schemas[j].Name })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = docsPage.Execute(w, map[string]any{
		"Title": doc.Info.Title, "Version": doc.Info.Version, "Description": doc.Info.Description,
		"Tags": tags, "Schemas": schemas,
	})
}
