// Generates tests/golden/gotemplate/cases.json: what Go's real text/template does with a table of
// templates, so pollama's Python re-implementation (pollama/templates/gotemplate) can be tested
// against it differentially.
//
// Only the standard library is used. Regenerate (see tests/golden/README.md for the toolchain):
//
//	go run tests/golden/gotemplate_golden.go tests/golden/gotemplate/cases.json
//
// With no argument the JSON goes to stdout.
//
// How every case is run, exactly as Ollama's template.Parse/Execute set it up:
//
//	tmpl, err := template.New(case.template_name).Option("missingkey=zero").Funcs(funcs).Parse(case.template)
//	err = tmpl.Execute(&buf, data)
//
// where funcs holds only Ollama's `json` function (json.Marshal, result as a string; Ollama's
// currentDate, yesterdayDate and toTypeScriptType are left out so the file stays deterministic).
//
// Schema of cases.json (a single JSON object, keys in this order):
//
//	{
//	  "generator":  "tests/golden/gotemplate_golden.go",
//	  "go_version": "go1.26.6",            // runtime.Version() of the toolchain that produced it
//	  "options":    "missingkey=zero",
//	  "funcs":      ["json"],
//	  "cases": [
//	    {
//	      "name":          "range_map_sorted",  // unique
//	      "template_name": "t",                 // the name given to template.New; it appears in
//	                                            // error texts ("template: t:1:5: ...")
//	      "template":      "{{range ...}}",
//	      "numbers":       "float64" | "int",   // how the JSON numbers in "data" were decoded
//	      "data":          <any JSON value>,    // the data passed to Execute (see below)
//	      "output":        "...",               // present on success: the exact rendered text
//	      "error":         "...",               // present on failure: Go's err.Error(), exactly
//	      "error_phase":   "parse" | "exec",    // present on failure
//	      "partial_output": "...",              // exec errors only: what Execute had already
//	                                            // written to the buffer before failing
//	      "note":          "..."                // optional, for humans
//	    }, ...
//	  ]
//	}
//
// A case has either "output", or "error" + "error_phase" (+ "partial_output" for exec errors).
//
// Data decoding (important for the consumer):
//   - "numbers": "float64" — the data was decoded with encoding/json into `any`, so JSON objects are
//     map[string]any, arrays []any, and EVERY JSON number is a float64, even `3` (it prints as `3`,
//     but `printf "%d"` gives `%!d(float64=3)` and `eq .n 3` fails: the literal 3 is an int). A
//     Python consumer should load such data with json.loads(..., parse_int=float).
//   - "numbers": "int" — the same, except that a JSON number written without fraction or exponent
//     that fits an int64 was decoded as a Go int (as Ollama's own structs have, e.g. a tool call's
//     Function.Index); all other numbers are float64. A Python consumer should use plain json.loads
//     (int → int, float → float). 1.0 written with a dot stays a float64.
//
// Numbers written in a template ({{ 3 }}, {{ 1.5 }}, {{ 'a' }}) are Go untyped constants: an integer
// literal becomes an int, a literal with '.', 'e' or 'p' (non-hex) becomes a float64, a char literal
// an int (its code point).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"text/template"
)

type tcase struct {
	name     string
	tmpl     string
	data     string // JSON; "" means null
	ints     bool   // decode integral JSON numbers as Go int
	tmplName string // name for template.New: "t", or "" like Ollama in a few cases
	note     string
}

type outCase struct {
	Name          string          `json:"name"`
	TemplateName  string          `json:"template_name"`
	Template      string          `json:"template"`
	Numbers       string          `json:"numbers"`
	Data          json.RawMessage `json:"data"`
	Output        *string         `json:"output,omitempty"`
	Error         *string         `json:"error,omitempty"`
	ErrorPhase    string          `json:"error_phase,omitempty"`
	PartialOutput *string         `json:"partial_output,omitempty"`
	Note          string          `json:"note,omitempty"`
}

type outFile struct {
	Generator string    `json:"generator"`
	GoVersion string    `json:"go_version"`
	Options   string    `json:"options"`
	Funcs     []string  `json:"funcs"`
	Cases     []outCase `json:"cases"`
}

// funcs mirrors Ollama's template.funcs, json only.
var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
}

var cases []tcase

// add appends a case decoded with float64 numbers.
func add(name, tmpl, data string) {
	cases = append(cases, tcase{name: name, tmpl: tmpl, data: data, tmplName: "t"})
}

// addI appends a case whose integral numbers are decoded as Go ints.
func addI(name, tmpl, data string) {
	cases = append(cases, tcase{name: name, tmpl: tmpl, data: data, ints: true, tmplName: "t"})
}

// addN appends a case with a note.
func addN(name, tmpl, data, note string) {
	cases = append(cases, tcase{name: name, tmpl: tmpl, data: data, note: note, tmplName: "t"})
}

// addIN appends an int-numbers case with a note.
func addIN(name, tmpl, data, note string) {
	cases = append(cases, tcase{name: name, tmpl: tmpl, data: data, ints: true, note: note, tmplName: "t"})
}

// addT appends a case executed under another template name (Ollama uses "").
func addT(name, tmplName, tmpl, data string) {
	cases = append(cases, tcase{name: name, tmpl: tmpl, data: data, tmplName: tmplName})
}

// convertInts turns json.Number values into int (when integral and in range) or float64.
func convertInts(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := x.Int64(); err == nil {
				return int(i)
			}
		}
		f, err := x.Float64()
		if err != nil {
			panic(err)
		}
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = convertInts(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = convertInts(e)
		}
		return x
	default:
		return v
	}
}

func decode(c tcase) (any, json.RawMessage) {
	src := c.data
	if src == "" {
		src = "null"
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(src)); err != nil {
		panic(fmt.Sprintf("case %s: bad data JSON: %v", c.name, err))
	}
	dec := json.NewDecoder(strings.NewReader(src))
	if c.ints {
		dec.UseNumber()
	}
	var v any
	if err := dec.Decode(&v); err != nil {
		panic(fmt.Sprintf("case %s: %v", c.name, err))
	}
	if c.ints {
		v = convertInts(v)
	}
	return v, json.RawMessage(compact.Bytes())
}

func run(c tcase) outCase {
	name := c.tmplName
	data, raw := decode(c)
	o := outCase{Name: c.name, TemplateName: name, Template: c.tmpl, Numbers: "float64", Data: raw, Note: c.note}
	if c.ints {
		o.Numbers = "int"
	}
	tmpl, err := template.New(name).Option("missingkey=zero").Funcs(funcs).Parse(c.tmpl)
	if err != nil {
		s := err.Error()
		o.Error, o.ErrorPhase = &s, "parse"
		return o
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		s, p := err.Error(), buf.String()
		o.Error, o.ErrorPhase, o.PartialOutput = &s, "exec", &p
		return o
	}
	s := buf.String()
	o.Output = &s
	return o
}

func main() {
	defineCases()
	out := outFile{
		Generator: "tests/golden/gotemplate_golden.go",
		GoVersion: runtime.Version(),
		Options:   "missingkey=zero",
		Funcs:     []string{"json"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			panic("duplicate case name " + c.name)
		}
		seen[c.name] = true
		out.Cases = append(out.Cases, run(c))
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
	if len(os.Args) > 1 {
		if err := os.WriteFile(os.Args[1], b.Bytes(), 0o644); err != nil {
			panic(err)
		}
		fmt.Fprintf(os.Stderr, "wrote %d cases to %s (%s)\n", len(out.Cases), os.Args[1], runtime.Version())
		return
	}
	os.Stdout.Write(b.Bytes())
}

// basic is shared data for the small cases.
const basic = `{
  "s": "hello", "e": "", "n": 3, "z": 0, "f": 1.5, "t": true, "F": false,
  "L": [1, 2, 3], "E": [], "S": ["x", "y", "z"], "M": {"b": 2, "a": 1, "c": 3}, "EM": {},
  "nul": null, "N": {"A": {"B": {"C": "deep"}}},
  "P": [{"name": "ann", "age": 31}, {"name": "bob", "age": 42}],
  "LL": [[1, 2], [], [3]], "html": "<a href='x'>&\"</a>"
}`

func defineCases() {
	// ---------------------------------------------------------------- text and comments
	add("text_only", "hello, world\n", `{}`)
	add("empty_template", "", `{}`)
	add("text_with_braces", "a { b } c {x} }} d", `{}`)
	add("comment", "a{{/* a comment */}}b", `{}`)
	add("comment_multiline", "a{{/* line1\nline2 {{ .s }} */}}b", basic)
	add("comment_trim_both", "a  \n {{- /* c */ -}} \n  b", `{}`)
	add("comment_trim_left_only", "a  {{- /* c */}}  b", `{}`)
	add("comment_trim_right_only", "a  {{/* c */ -}}  b", `{}`)
	add("comment_space_before_is_error", "{{ /* c */ }}", `{}`)
	add("comment_unclosed", "a{{/* c }}", `{}`)
	add("comment_then_code_is_error", "{{/* c */ .s}}", basic)

	// ---------------------------------------------------------------- trim markers
	add("trim_left", "a   {{- .s}}", basic)
	add("trim_right", "{{.s -}}   b", basic)
	add("trim_both_newlines_tabs", "a\n\n  \t{{- .s -}}\n\t b", basic)
	add("trim_crlf", "a\r\n{{- .s -}}\r\nb", basic)
	add("trim_tab_after_marker", "a {{-\t.s\t-}} b", basic)
	add("trim_newline_after_marker", "a {{-\n.s\n-}} b", basic)
	addN("trim_keeps_vt_ff", "a\v\f {{- .s -}} \f\vb", basic, "only space, \\t, \\r, \\n are trimmed")
	addN("trim_minus_number", "{{-3}}|{{ -3}}|{{-3 }}|{{- 3 -}}|", `{}`, "{{-3 is the number -3, not a trim marker")
	add("trim_whole_text_node", "{{.s}}   \n  {{- .s}}", basic)
	add("trim_in_if_block", "{{- if .t -}}\n  yes\n{{- end -}}\n!", basic)
	add("trim_only_affects_adjacent_text", "x {{- if .t }} y {{ end -}} z", basic)
	add("trim_marker_without_space", "{{.s-}}", basic)
	add("trim_between_actions", "{{.s}} {{- .s}} {{.s -}} {{.s}}", basic)

	// ---------------------------------------------------------------- if / else
	add("if_true", "{{if .t}}yes{{end}}", basic)
	add("if_false", "{{if .F}}yes{{end}}", basic)
	add("if_else", "{{if .F}}yes{{else}}no{{end}}", basic)
	add("if_else_if", `{{if eq .s "a"}}A{{else if eq .s "hello"}}H{{else}}X{{end}}`, basic)
	add("if_else_if_chain_last", `{{if .F}}1{{else if .z}}2{{else if .e}}3{{else if .E}}4{{else}}5{{end}}`, basic)
	add("if_else_if_no_else", `{{if .F}}1{{else if .z}}2{{end}}.`, basic)
	add("if_missing_key", "{{if .missing}}y{{else}}n{{end}}", basic)
	add("if_var_decl", "{{if $x := .s}}[{{$x}}]{{end}}", basic)
	add("if_nested", "{{if .t}}a{{if .F}}b{{else}}c{{if .n}}d{{end}}{{end}}{{end}}", basic)
	addN("truth_table",
		"{{range $k, $v := .}}{{$k}}={{if $v}}T{{else}}F{{end}} {{end}}",
		`{"a_zero": 0, "b_zero_float": 0.0, "c_neg": -1, "d_small": 1e-300, "e_empty": "", "f_str0": "0",
		  "g_false": false, "h_true": true, "i_null": null, "j_empty_list": [], "k_list0": [0],
		  "l_empty_map": {}, "m_map_null": {"a": null}, "n_space": " "}`,
		"Go truth: false, 0, nil, empty string/list/map are false")
	addI("truth_table_ints",
		"{{range $k, $v := .}}{{$k}}={{if $v}}T{{else}}F{{end}} {{end}}",
		`{"a": 0, "b": 1, "c": -7, "d": 0.0}`)
	add("truth_literals", `{{if 0}}a{{end}}{{if 1}}b{{end}}{{if ""}}c{{end}}{{if "x"}}d{{end}}{{if 0.0}}e{{end}}{{if true}}f{{end}}{{if false}}g{{end}}`, `{}`)
	add("truth_nil_literal", `{{if nil}}a{{else}}b{{end}}`, `{}`)

	// ---------------------------------------------------------------- range
	add("range_list", "{{range .L}}[{{.}}]{{end}}", basic)
	add("range_list_strings", "{{range .S}}{{.}},{{end}}", basic)
	add("range_map_sorted_kv", "{{range $k, $v := .M}}{{$k}}={{$v}};{{end}}", basic)
	add("range_map_values", "{{range .M}}{{.}}{{end}}", basic)
	addN("range_map_one_var", "{{range $v := .M}}{{$v}}{{end}}", basic, "with one variable it is the element, not the key")
	add("range_index_value", "{{range $i, $v := .S}}{{$i}}:{{$v}} {{end}}", basic)
	add("range_index_underscore", "{{range $i, $_ := .S}}{{$i}}{{$_}}{{.}} {{end}}", basic)
	add("range_else_empty_list", "{{range .E}}x{{else}}empty{{end}}", basic)
	add("range_else_missing", "{{range .missing}}x{{else}}none{{end}}", basic)
	add("range_else_null", "{{range .nul}}x{{else}}none{{end}}", basic)
	add("range_else_empty_map", "{{range .EM}}x{{else}}none{{end}}", basic)
	add("range_no_else_empty", "a{{range .E}}x{{end}}b", basic)
	addI("range_break", "{{range .L}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}}", basic)
	addI("range_continue", "{{range .L}}{{if eq . 2}}{{continue}}{{end}}{{.}}{{end}}", basic)
	addN("range_break_float_data_int_literal", "{{range .L}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}}", basic,
		"JSON numbers are float64, the literal 2 is an int: incompatible types")
	add("range_break_float_literal", "{{range .L}}{{if eq . 2.0}}{{break}}{{end}}{{.}}{{end}}", basic)
	addI("range_break_nested", "{{range .LL}}<{{range .}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}}>{{end}}", basic)
	add("range_break_outside", "{{break}}", basic)
	add("range_continue_outside", "{{if .t}}{{continue}}{{end}}", basic)
	add("range_root_inside", "{{range .S}}{{$.s}}-{{.}} {{end}}", basic)
	add("range_dot_restored", "{{range .S}}{{end}}{{.s}}", basic)
	add("range_over_number", "{{range .n}}{{.}}{{end}}", basic)
	add("range_over_string", "{{range .s}}{{.}}{{end}}", basic)
	add("range_over_bool", "{{range .t}}{{.}}{{end}}", basic)
	addN("range_over_int_literal", "{{range 3}}{{.}},{{end}}", `{}`, "range over an integer: Go 1.22+")
	add("range_over_float_literal", "{{range 2.5}}{{.}}{{end}}", `{}`)
	add("range_var_scope_ends", "{{range .S}}{{$x := .}}{{end}}{{$x}}", basic)
	add("range_assign_outer_var", `{{$last := ""}}{{range .S}}{{$last = .}}{{end}}{{$last}}`, basic)
	add("range_fresh_var_each_iteration", "{{range .S}}{{$c := .}}{{$c}}{{$c = \"!\"}}{{$c}}{{end}}", basic)
	add("range_nested_lists", "{{range .LL}}[{{range .}}{{.}}{{end}}]{{end}}", basic)
	add("range_list_of_maps", "{{range .P}}{{.name}}:{{.age}} {{end}}", basic)
	add("range_nested_index_vars", "{{range $i, $row := .LL}}{{range $j, $v := $row}}{{$i}}{{$j}}={{$v}} {{end}}{{end}}", basic)
	add("range_map_of_maps_sorted", "{{range $k, $v := .}}{{$k}}:{{range $k2, $v2 := $v}}{{$k2}}{{$v2}}{{end}};{{end}}",
		`{"zeta": {"y": 1, "x": 2}, "alpha": {"b": "B", "a": "A"}, "Beta": {}, "_u": {"k": true}, "10": {}, "9": {}}`)
	add("range_pipeline_len", "{{range $i, $e := .S}}{{if $i}}, {{end}}{{$e}}{{end}} ({{len .S}})", basic)
	add("range_else_dot_unchanged", "{{range .E}}x{{else}}{{.s}}{{end}}", basic)
	add("range_three_vars_error", "{{range $a, $b, $c := .S}}{{end}}", basic)
	add("range_else_if_error", "{{range .S}}x{{else if .t}}y{{end}}", basic)

	// ---------------------------------------------------------------- with
	add("with_truthy", "{{with .s}}[{{.}}]{{end}}", basic)
	add("with_falsy", "{{with .e}}[{{.}}]{{end}}.", basic)
	add("with_else", "{{with .missing}}[{{.}}]{{else}}none{{.s}}{{end}}", basic)
	add("with_var", "{{with $v := .N.A}}{{$v.B.C}}|{{.B.C}}{{end}}", basic)
	add("with_dot_restored", "{{with .N}}{{.A.B.C}}{{end}}{{.s}}", basic)
	add("with_list", "{{with .S}}{{index . 1}}{{end}}", basic)
	add("with_empty_list", "{{with .E}}y{{else}}n{{end}}", basic)
	addN("with_else_with", "{{with .missing}}a{{else with .s}}b{{.}}{{else}}c{{end}}", basic, "{{else with}}: Go 1.23+")
	addN("with_else_with_fallthrough", "{{with .missing}}a{{else with .e}}b{{else}}c{{.s}}{{end}}", basic, "{{else with}}: Go 1.23+")

	// ---------------------------------------------------------------- variables
	add("var_decl", "{{$x := 1}}{{$x}}", `{}`)
	add("var_decl_prints_nothing", "a{{$x := 5}}b", `{}`)
	add("var_assign_in_if", "{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", `{}`)
	add("var_shadow_in_if", "{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}", `{}`)
	add("var_shadow_in_with", "{{$x := 1}}{{with .s}}{{$x := .}}{{$x}}{{end}}{{$x}}", basic)
	add("var_scope_with_ends", "{{with .s}}{{$x := 1}}{{end}}{{$x}}", basic)
	add("var_scope_if_ends", "{{if .t}}{{$x := 1}}{{end}}{{$x}}", basic)
	add("var_scope_else_branch", "{{if .t}}{{$x := 1}}{{else}}{{$x}}{{end}}", basic)
	add("var_root", "{{$}}", `{"b": 2, "a": "x"}`)
	add("var_root_field_in_range", "{{range .S}}{{$.s}}{{end}}", basic)
	add("var_field_chain", "{{$n := .N}}{{$n.A.B.C}}", basic)
	add("var_pipeline_decl", `{{$x := .s | printf "%s!"}}{{$x}}`, basic)
	add("var_undefined", "{{$y}}", basic)
	add("var_assign_undefined", "{{$y = 1}}", basic)
	add("var_redeclare_same_scope", "{{$x := 1}}{{$x := 2}}{{$x}}", `{}`)
	add("var_type_change", `{{$x := 1}}{{$x = "s"}}{{$x}}`, `{}`)
	add("var_dollar_reassign", `{{$ = 1}}`, `{}`)
	add("var_in_paren", `{{$x := "a"}}{{(printf "%s%s" $x $x)}}`, `{}`)
	add("var_range_sets_outer_in_nested_if", `{{$found := false}}{{range .S}}{{if eq . "y"}}{{$found = true}}{{end}}{{end}}{{$found}}`, basic)

	// ---------------------------------------------------------------- fields and dot
	add("field_chain", "{{.N.A.B.C}}", basic)
	add("field_missing_key", "{{.missing}}", basic)
	add("field_null_value", "{{.nul}}", basic)
	add("field_missing_nested_key", "{{.N.A.zz}}", basic)
	add("field_missing_chain", "{{.missing.x}}", basic)
	add("field_null_chain", "{{.nul.x}}", basic)
	add("field_on_string", "{{.s.x}}", basic)
	add("field_on_list", "{{.L.x}}", basic)
	add("field_on_number", "{{.n.x}}", basic)
	add("field_on_bool", "{{.t.x}}", basic)
	add("field_after_paren", "{{(index .P 1).name}}", basic)
	add("field_after_paren_var", "{{$p := .P}}{{(index $p 0).age}}", basic)
	add("field_case_sensitive", "{{.S}} {{.s}}", basic)
	add("dot_string", "{{.}}", `"just a string"`)
	add("dot_list", "{{.}}", `[1, "a", null, true]`)
	add("dot_null", "{{.}}|{{.x}}", ``)
	add("dot_number", "{{.}}", `42`)
	add("field_of_null_root", "{{.x.y}}", ``)
	add("field_with_args", "{{.s 1}}", basic)
	add("field_missing_in_map_in_list", "{{range .P}}{{.nick}};{{end}}", basic)

	// ---------------------------------------------------------------- pipelines and parens
	add("pipe_printf", `{{.s | printf "%s!"}}`, basic)
	add("pipe_chain", `{{.s | printf "%s!" | printf "[%s]" | len}}`, basic)
	add("pipe_len", `{{.S | len}}`, basic)
	add("pipe_last_arg", `{{"b" | printf "%s%s" "a"}}`, `{}`)
	add("paren_args", `{{printf "%s-%s" (index .S 0) (index .S 2)}}`, basic)
	add("paren_nested", `{{len (slice .S (len (slice .S 2)))}}`, basic)
	add("paren_pipeline_inside", `{{printf "<%s>" (.s | printf "%s?")}}`, basic)
	add("pipe_into_html", `{{.html | html}}`, basic)
	add("pipe_empty_command", `{{.s | }}`, basic)
	add("pipe_nothing", `{{}}`, `{}`)
	add("pipe_to_non_function", `{{.s | .s}}`, basic)
	add("paren_unclosed", `{{(len .S}}`, basic)
	add("paren_unexpected", `{{len .S)}}`, basic)

	// ---------------------------------------------------------------- define / template / block
	add("define_template", `{{define "T"}}[{{.}}]{{end}}{{template "T" .s}}`, basic)
	add("template_no_data", `{{define "T"}}[{{.}}]{{end}}{{template "T"}}`, basic)
	add("template_dot", `{{define "T"}}{{.s}}{{end}}{{template "T" .}}`, basic)
	add("template_root_is_arg", `{{define "T"}}{{$.s}}{{end}}{{template "T" .in}}`, `{"s": "outer", "in": {"s": "inner"}}`)
	add("block", `{{block "B" .s}}<{{.}}>{{end}}|{{template "B" "again"}}`, basic)
	add("template_undefined", `a{{template "nope"}}b`, basic)
	add("only_define", `{{define "T"}}x{{end}}`, basic)
	add("only_define_whitespace", "{{define \"T\"}}x{{end}}\n  \n", basic)
	add("define_recursive", `{{define "R"}}{{if .}}{{index . 0}}{{template "R" slice . 1}}{{end}}{{end}}{{template "R" .S}}`, basic)
	add("define_vars_isolated", `{{$x := 1}}{{define "T"}}{{$x}}{{end}}`, basic)
	add("define_twice", `{{define "A"}}1{{end}}{{define "A"}}2{{end}}{{template "A"}}`, `{}`)
	add("define_empty_then_full", `{{define "A"}}{{end}}{{define "A"}}2{{end}}{{template "A"}}`, `{}`)
	add("define_inside_if", `{{if .t}}{{define "A"}}1{{end}}{{end}}`, basic)
	add("template_trimmed", "a\n{{- template \"T\" . -}}\nb{{define \"T\"}} T {{end}}", basic)
	add("template_name_not_string", `{{template .s}}`, basic)
	add("template_raw_name", "{{define `R`}}r{{end}}{{template `R`}}", `{}`)
	add("define_missing_name", `{{define}}x{{end}}`, `{}`)

	// ---------------------------------------------------------------- and / or / not
	add("and_values", `{{and 1 2 3}}|{{and 1 0 3}}|{{and "a" ""}}|{{and .S .E}}|{{and .t .s}}`, basic)
	add("or_values", `{{or 0 "" "x" "y"}}|{{or 0 ""}}|{{or .missing "d"}}|{{or .E .L}}|{{or .F .nul}}`, basic)
	add("and_short_circuit", `{{and 0 (index .L 10)}}`, basic)
	add("or_short_circuit", `{{or 1 (index .L 10)}}`, basic)
	add("and_no_short_circuit_error", `{{and 1 (index .L 10)}}`, basic)
	add("not_values", `{{not 0}} {{not 1}} {{not ""}} {{not .L}} {{not .E}} {{not .missing}} {{not .nul}} {{not .t}}`, basic)
	add("and_no_args", `{{and}}`, `{}`)
	add("not_two_args", `{{not 1 2}}`, `{}`)
	add("and_in_if", `{{if and .t (not .F) (or .e .s)}}yes{{end}}`, basic)
	add("or_eq_combo", `{{if or (eq .s "a") (eq .s "hello")}}match{{end}}`, basic)

	// ---------------------------------------------------------------- len / index / slice
	add("len_kinds", `{{len .S}} {{len .M}} {{len .s}} {{len .E}} {{len .EM}} {{len "héllo"}}`, basic)
	add("len_number", `{{len .n}}`, basic)
	add("len_missing", `{{len .missing}}`, basic)
	add("len_no_args", `{{len}}`, basic)
	add("len_two_args", `{{len .S .S}}`, basic)
	add("index_list", `{{index .S 0}}{{index .S 2}}`, basic)
	add("index_map", `{{index .M "b"}}`, basic)
	add("index_nested", `{{index .N "A" "B" "C"}}|{{index .LL 0 1}}|{{index .P 1 "name"}}`, basic)
	add("index_no_indices", `{{index .S}}`, basic)
	add("index_out_of_range", `before{{index .S 5}}after`, basic)
	add("index_negative", `{{index .S -1}}`, basic)
	add("index_map_missing_key", `{{index .M "zz"}}`, basic)
	add("index_map_null_value", `{{index . "nul"}}`, basic)
	add("index_string", `{{index .s 1}}`, basic)
	add("index_float_index", `{{index .S .i}}`, `{"S": ["a", "b"], "i": 1}`)
	addI("index_int_index", `{{index .S .i}}`, `{"S": ["a", "b"], "i": 1}`)
	add("index_float_literal", `{{index .S 1.0}}`, basic)
	add("index_nil", `{{index .missing 0}}`, basic)
	add("index_map_int_key", `{{index .M 1}}`, basic)
	add("index_number", `{{index 1 0}}`, basic)
	add("index_range_var", `{{range $i, $_ := .S}}{{index $.S $i}}{{end}}`, basic)
	add("slice_string", `{{slice .s 1 3}}|{{slice .s 2}}|{{slice .s}}|{{slice .s 5}}|{{slice .s 0 0}}`, basic)
	add("slice_list", `{{slice .L 1}}|{{slice .L 0 2}}|{{slice .L 0 1 2}}|{{slice .L 3}}`, basic)
	add("slice_string_3index", `{{slice .s 0 1 2}}`, basic)
	add("slice_out_of_range", `{{slice .L 1 5}}`, basic)
	add("slice_inverted", `{{slice .L 2 1}}`, basic)
	add("slice_map", `{{slice .M 1}}`, basic)
	add("slice_utf8", `{{slice "héllo" 1 3}}|{{slice "héllo" 3}}`, `{}`)
	addN("slice_last_message_idiom",
		`{{range $i, $_ := .Messages}}{{$last := eq (len (slice $.Messages $i)) 1}}{{.Role}}{{if $last}}(last){{end}} {{end}}`,
		`{"Messages": [{"Role": "user"}, {"Role": "assistant"}, {"Role": "user"}]}`, "Ollama's $last idiom")

	// ---------------------------------------------------------------- comparison
	add("eq_strings", `{{eq .s "hello"}} {{eq .s "x"}} {{eq "" .e}}`, basic)
	add("eq_multi", `{{eq .s "a" "b" "hello"}} {{eq .s "a" "b"}}`, basic)
	add("eq_int_literals", `{{eq 1 1}} {{eq 1 2}} {{eq 1 1 2}}`, `{}`)
	add("eq_float_data_int_literal", `{{eq .n 3}}`, basic)
	add("eq_float_data_float_literal", `{{eq .n 3.0}} {{eq .f 1.5}}`, basic)
	addI("eq_int_data_int_literal", `{{eq .n 3}}`, basic)
	add("eq_string_number", `{{eq .s 1}}`, basic)
	add("eq_missing_string", `{{eq .missing "x"}}`, basic)
	add("eq_missing_missing", `{{eq .missing .other}}`, basic)
	add("eq_null_string", `{{eq .nul "x"}}`, basic)
	add("eq_nil_literal", `{{eq .nul nil}}`, basic)
	add("eq_bool", `{{eq .t true}} {{eq .F true}}`, basic)
	add("eq_list", `{{eq .L .L}}`, basic)
	add("eq_map_string", `{{eq .M "x"}}`, basic)
	add("eq_one_arg", `{{eq 1}}`, `{}`)
	add("eq_no_args", `{{eq}}`, `{}`)
	add("eq_char_int", `{{eq 'a' 97}}`, `{}`)
	add("ne_values", `{{ne 1 2}} {{ne "a" "a"}} {{ne .s "x"}}`, basic)
	add("ne_three_args", `{{ne 1 2 3}}`, `{}`)
	add("lt_family_float", `{{lt .f 2.0}} {{le .f 1.5}} {{gt .f 1.5}} {{ge .n 3.0}} {{lt .z 0.5}}`, basic)
	addI("lt_family_int", `{{lt .n 4}} {{le .n 3}} {{gt .n 3}} {{ge .n 2}} {{lt -1 0}}`, basic)
	add("lt_strings", `{{lt "a" "b"}} {{lt "b" "a"}} {{le "a" "a"}} {{gt "B" "a"}} {{ge "abc" "ab"}}`, `{}`)
	add("lt_incompatible", `{{lt 1 "a"}}`, `{}`)
	add("lt_int_float", `{{lt 1 2.5}}`, `{}`)
	add("lt_float_data_int_literal", `{{lt .n 4}}`, basic)
	add("lt_bool", `{{lt true false}}`, `{}`)
	add("lt_missing", `{{lt .missing 1}}`, basic)
	add("lt_list", `{{lt .L .L}}`, basic)
	add("gt_three_args", `{{gt 3 2 1}}`, `{}`)

	// ---------------------------------------------------------------- print / printf / println
	add("print_numbers", `{{print 1 2 3}}`, `{}`)
	add("print_strings", `{{print "a" "b" "c"}}`, `{}`)
	add("print_mixed", `{{print "a" 1 2 "b" 3 "c"}}`, `{}`)
	add("print_bools", `{{print true false "x" true}}`, `{}`)
	add("print_nil", `{{print nil}}|{{print nil nil}}|{{print "a" nil}}`, `{}`)
	add("print_missing", `{{print .missing}}|{{print .nul 1}}`, basic)
	add("print_lists", `{{print .L .S}}|{{print .M 1}}`, basic)
	add("print_floats", `{{print 1.5 2.0 1e6}}|{{print .f .n}}`, basic)
	add("print_no_args", `{{print}}|`, `{}`)
	add("println_mixed", `{{println "a" "b" 1}}|{{println}}|`, `{}`)
	add("printf_verbs_ints",
		`{{printf "%s|%d|%v|%q|%x|%5.2f|%t|%%" .s .n .L .s .s .f .t}}`, basic)
	addI("printf_verbs_int_data",
		`{{printf "%s|%d|%v|%q|%x|%5.2f|%t|%%" .s .n .L .s .n .f .t}}`, basic)
	add("printf_d_float", `{{printf "%d" .n}}`, basic)
	add("printf_s_number", `{{printf "%s" .n}}|{{printf "%s" 3}}`, basic)
	add("printf_missing_arg", `{{printf "%s and %s" "a"}}`, `{}`)
	add("printf_extra_arg", `{{printf "%s" "a" "b" 1}}`, `{}`)
	add("printf_no_args", `{{printf}}`, `{}`)
	add("printf_only_format", `{{printf "100%%"}}`, `{}`)
	add("printf_nil", `{{printf "%v" nil}}|{{printf "%s" .missing}}|{{printf "%v" .nul}}|{{printf "%d" nil}}`, basic)
	add("printf_collections", `{{printf "%v" .M}}|{{printf "%v" .P}}|{{printf "%s" .S}}|{{printf "%q" .S}}|{{printf "%v" .E}}|{{printf "%v" .EM}}`, basic)
	addI("printf_d_list_ints", `{{printf "%d" .L}}|{{printf "%x" .L}}`, basic)
	add("printf_chars", `{{printf "%q %c %U %d" 65 65 65 'A'}}`, `{}`)
	add("printf_widths", `{{printf "[%5s][%-5s][%05d][%x][%X][% x][%+d][%8.3f][%-8.2f|]" "ab" "ab" 42 255 "hi" "hi" 5 3.14159 2.5}}`, `{}`)
	add("printf_float_verbs", `{{printf "%e|%E|%g|%G|%.3g|%f|%.0f|%v" 123456.789 123456.789 1e21 0.000001 3.14159 1e6 2.5 100000000.0}}`, `{}`)
	add("printf_types", `{{printf "%T %T %T %T %T %T %T" .n .s .L .M .t 3 .nul}}`, basic)
	addI("printf_types_ints", `{{printf "%T %T %T" .n .f .L}}`, basic)
	add("printf_bad_verb", `{{printf "%z" 1}}|{{printf "%!"}}|{{printf "%"}}`, `{}`)
	add("printf_t_string", `{{printf "%t" "x"}}`, `{}`)
	add("printf_v_flags", `{{printf "%+v|%#v|%#v|%#v" .M .s .n .L}}`, basic)
	add("printf_indexed_args", `{{printf "%[2]s %[1]s" "a" "b"}}`, `{}`)
	add("printf_star_width", `{{printf "[%*d]" 5 42}}`, `{}`)
	add("printf_newlines", "{{printf \"%s\\n\\n%s\" .s .s}}", basic)
	add("printf_q_unicode", `{{printf "%q|%+q|%x" "é\n\"" "é" "é"}}`, `{}`)

	// ---------------------------------------------------------------- html / js / urlquery
	add("html_basic", `{{html .html}}`, basic)
	add("html_multi_args", `{{html "<" 1 2 "&"}}|{{html 3}}|{{html .L}}`, basic)
	add("html_nul_and_unicode", `{{html "a\x00b é"}}`, `{}`)
	add("js_basic", `{{js "a'b\"c<d>&e=f\n\t\\ x`+"`"+`y"}}`, `{}`)
	add("js_unicode", `{{js "é \u2028 \x01"}}`, `{}`)
	add("js_multi", `{{js "a" 1 "b"}}|{{js .S}}`, basic)
	add("urlquery_basic", `{{urlquery "a b&c=d/é?#+"}}|{{urlquery "x" 1 2}}|{{.S | urlquery}}`, basic)

	// ---------------------------------------------------------------- literals
	add("lit_string_escapes", `{{"a\tb\n\"q\" \u00e9 \x41 \101 \\"}}`, `{}`)
	add("lit_raw_string", "{{`raw \\n {{ }} \"x\"`}}", `{}`)
	add("lit_raw_string_multiline", "{{`line1\nline2`}}", `{}`)
	add("lit_chars", `{{'a'}} {{'\n'}} {{'\u00e9'}} {{'\''}} {{printf "%c" 'é'}}`, `{}`)
	add("lit_ints", `{{0x1F}} {{0X1f}} {{017}} {{0o17}} {{0b101}} {{1_000_000}} {{-5}} {{+5}} {{0}}`, `{}`)
	add("lit_floats", `{{1.5}} {{1.0}} {{1e3}} {{1e6}} {{1.23456789e8}} {{.5}} {{-0.5}} {{0x1p-2}} {{1e-5}} {{100000.0}} {{1e21}} {{1e20}}`, `{}`)
	add("lit_int_max", `{{9223372036854775807}} {{-9223372036854775808}}`, `{}`)
	add("lit_int_overflow", `{{9223372036854775808}}`, `{}`)
	add("lit_int_overflow_big", `{{99999999999999999999999}}`, `{}`)
	add("lit_bools", `{{true}} {{false}} {{print true}}`, `{}`)
	add("lit_nil_alone", `{{nil}}`, `{}`)
	add("lit_complex", `{{1i}} {{printf "%v" 2i}}`, `{}`)
	add("lit_bad_number", `{{1x}}`, `{}`)
	add("lit_bad_number_dots", `{{1.2.3}}`, `{}`)
	add("lit_bad_hex", `{{0x}}`, `{}`)
	add("lit_unterminated_string", `{{"abc}}`, `{}`)
	add("lit_unterminated_raw", "{{`abc}}", `{}`)
	add("lit_bad_char", `{{'ab'}}`, `{}`)
	add("lit_bad_escape", `{{"\q"}}`, `{}`)
	add("lit_number_as_command_with_args", `{{3 .s}}`, basic)
	add("lit_string_as_command_with_args", `{{"a" "b"}}`, `{}`)
	add("lit_in_pipeline", `{{"abc" | len}} {{3 | printf "%d"}}`, `{}`)

	// ---------------------------------------------------------------- printing data values
	addN("float_printing",
		`{{range .}}{{.}} {{end}}`,
		`[1, 1.5, 1e21, 1e20, 100000, 1000000, 123456789, 0.1, 0.30000000000000004, 0.0001, 0.00001,
		  -0, -0.0, 1e-7, 3.0e10, 2.5e-300, 1.7976931348623157e308, 5e-324, 12345.678, 9007199254740993]`,
		"%v of a float64 is strconv 'g' with shortest digits: exponent form (1e+06, 1e-05) when the decimal exponent is < -4 or >= 6")
	add("float_printing_list", `{{.}}`, `[1, 1.5, 1e21, 1000000, 123456789, 0.00001, -0]`)
	addI("int_printing", `{{range .}}{{.}} {{end}}|{{.}}`, `[1, 123456789, -5, 9007199254740993, 1.0, 1e3, 0]`)
	add("print_map", `{{.M}}`, basic)
	add("print_list", `{{.L}} {{.S}} {{.E}} {{.EM}}`, basic)
	add("print_nested", `{{.}}`, `{"m": {"x": [1, {"y": null, "z": [true, "a b"]}], "s": "a b"}, "e": ""}`)
	add("print_list_with_null_and_empty", `{{.}}`, `[null, 1, "", "a", [], {}]`)
	add("print_root_map_sorted", `{{.}}`, `{"b": 1, "a": 2, "B": 3, "_": 4, "aa": 5, "10": 6, "9": 7, "é": 8}`)
	add("print_bools_and_strings", `{{.t}} {{.F}} {{.s}}`, basic)
	add("print_map_in_list_of_maps", `{{.P}}`, basic)

	// ---------------------------------------------------------------- json (Ollama's function)
	add("json_map_sorted", `{{json .M}}`, basic)
	add("json_html_escape", `{{json .html}}|{{json "a<b>&c"}}`, basic)
	add("json_unicode", `{{json "é 日本 \u2028 \u2029 \x01 \t"}}`, `{}`)
	addN("json_floats", `{{json .}}`,
		`[1, 1.5, 1e21, 1e20, 100000, 1000000, 123456789, 0.1, 0.000001, 0.0000001, 1e-7, -0, 12345.678]`,
		"encoding/json floats: 'f' format unless < 1e-6 or >= 1e21, e-notation cleaned (1e-07 -> 1e-7)")
	addI("json_ints", `{{json .}}`, `[1, 123456789, -5, 9007199254740993, 1.0]`)
	add("json_null_missing", `{{json .nul}}|{{json .missing}}|{{json nil}}`, basic)
	add("json_scalars", `{{json .s}}|{{json .n}}|{{json .t}}|{{json .E}}|{{json .EM}}|{{json 3}}|{{json 2.5}}`, basic)
	add("json_nested", `{{json .}}`, `{"b": {"z": [1, {"y": null}], "a": "x"}, "a": [{"k": "v", "j": "w"}]}`)
	add("json_no_args", `{{json}}`, `{}`)
	add("json_two_args", `{{json 1 2}}`, `{}`)
	add("json_pipe", `{{.S | json}}`, basic)

	// ---------------------------------------------------------------- parse errors
	add("err_unclosed_action", `a {{.s`, basic)
	add("err_unclosed_action_brace", `a {{.s}`, basic)
	addN("action_newline_inside", "a {{.s\n}}", basic, "newlines inside actions are allowed")
	add("err_unclosed_action_newline", "a {{.s\n", basic)
	add("err_missing_end", `{{if .s}}x`, basic)
	add("err_missing_end_range", "{{range .S}}\nx", basic)
	add("err_unexpected_end", `a{{end}}`, basic)
	add("err_unexpected_else", `a{{else}}`, basic)
	add("err_if_no_pipeline", `{{if}}x{{end}}`, basic)
	add("err_range_no_pipeline", `{{range}}x{{end}}`, basic)
	add("err_with_no_pipeline", `{{with}}x{{end}}`, basic)
	add("err_unknown_function", `{{foo .s}}`, basic)
	add("err_unknown_function_in_pipe", `{{.s | foo}}`, basic)
	add("err_ollama_func_not_registered", `{{currentDate}}`, basic)
	add("err_undefined_variable", `{{$y}}`, basic)
	add("err_undefined_variable_line3", "a\nb\n{{$y.x}}", basic)
	add("err_bad_number", `{{ 12abc }}`, basic)
	add("err_unexpected_char", `{{ .s # }}`, basic)
	add("err_decl_no_value", `{{$x := }}`, basic)
	add("err_double_else", `{{if .t}}a{{else}}b{{else}}c{{end}}`, basic)
	add("err_end_with_args", `{{if .t}}a{{end .t}}`, basic)
	add("err_field_assign", `{{.s = 1}}`, basic)
	add("err_pipe_decl_not_first", `{{.s | $x := 1}}`, basic)
	add("err_unexpected_colon_eq", `{{.s := 1}}`, basic)
	add("err_error_line_number", "line1\nline2\n{{if .t}}\n{{else}}\n{{else}}{{end}}", basic)
	add("err_bad_field_syntax", `{{.s..x}}`, basic)
	add("err_space_after_dot", `{{. s}}`, basic)

	// ---------------------------------------------------------------- exec errors
	add("exec_partial_output", "before {{.s}} {{index .L 10}} after", basic)
	add("exec_error_in_range", "{{range .S}}{{.}}{{index $.L 7}}{{end}}", basic)
	add("exec_error_in_template", `{{define "T"}}[{{index . 9}}]{{end}}x{{template "T" .L}}`, basic)
	add("exec_error_line_col", "a\n  b {{.s}}\n    {{len .n}}", basic)
	add("exec_call_non_function", `{{call .s}}`, basic)
	add("exec_wrong_args_index", `{{index}}`, basic)
	add("exec_wrong_args_slice", `{{slice}}`, basic)
	add("exec_html_of_missing", `{{html .missing}}|{{js .missing}}|{{urlquery .missing}}`, basic)
	addT("ollama_name_parse_error", "", `{{if .x}}`, `{}`)
	addT("ollama_name_exec_error", "", `{{index .L 3}}`, `{"L": []}`)
	addT("ollama_name_ok", "", `{{.x}}`, `{"x": "ok"}`)
	addT("ollama_name_template_undefined", "", `{{template "missing"}}`, `{}`)
	addT("named_long", "my-model/template", `{{.x.y}}`, `{"x": "s"}`)

	chatTemplates()
}

// ---------------------------------------------------------------- realistic chat templates
//
// Data shapes follow Ollama's templateMessage/templateTool values (see the spec, H.3), as plain maps.
// Differences from Ollama's structs that matter here: a tool call's Function.Arguments and a
// parameters' Properties print as Go maps (map[k:v]) rather than JSON, since plain maps have no
// String() method — so these templates use `json` where JSON is wanted.

const convo = `{
  "System": "You are a helpful assistant.",
  "Messages": [
    {"Role": "system", "Content": "You are a helpful assistant.", "Thinking": "", "Images": [], "ToolCalls": [], "ToolName": "", "ToolCallID": ""},
    {"Role": "user", "Content": "Hi there!", "Thinking": "", "Images": [], "ToolCalls": [], "ToolName": "", "ToolCallID": ""},
    {"Role": "assistant", "Content": "Hello! How can I help?", "Thinking": "", "Images": [], "ToolCalls": [], "ToolName": "", "ToolCallID": ""},
    {"Role": "user", "Content": "Write a haiku about <tags> & \"quotes\".", "Thinking": "", "Images": [], "ToolCalls": [], "ToolName": "", "ToolCallID": ""}
  ],
  "Tools": [], "Response": "", "Think": false, "ThinkLevel": "", "IsThinkSet": false
}`

const convoNoSystem = `{
  "System": "",
  "Messages": [
    {"Role": "user", "Content": "What is 2+2?", "Thinking": "", "Images": [], "ToolCalls": [], "ToolName": "", "ToolCallID": ""}
  ],
  "Tools": [], "Response": "", "Think": false, "ThinkLevel": "", "IsThinkSet": false
}`

const toolConvo = `{
  "System": "You can call tools.",
  "Messages": [
    {"Role": "system", "Content": "You can call tools.", "Thinking": "", "Images": [], "ToolCalls": [], "ToolName": "", "ToolCallID": ""},
    {"Role": "user", "Content": "What's the weather in Paris and in Tokyo?", "Thinking": "", "Images": [], "ToolCalls": [], "ToolName": "", "ToolCallID": ""},
    {"Role": "assistant", "Content": "", "Thinking": "I should call get_weather twice.", "Images": [], "ToolName": "", "ToolCallID": "",
     "ToolCalls": [
       {"ID": "call_1", "Function": {"Index": 0, "Name": "get_weather", "Arguments": {"location": "Paris", "unit": "celsius"}}},
       {"ID": "call_2", "Function": {"Index": 1, "Name": "get_weather", "Arguments": {"unit": "celsius", "location": "Tokyo", "days": 2}}}
     ]},
    {"Role": "tool", "Content": "{\"temp\": 18, \"sky\": \"cloudy\"}", "Thinking": "", "Images": [], "ToolCalls": [], "ToolName": "get_weather", "ToolCallID": "call_1"},
    {"Role": "tool", "Content": "{\"temp\": 25, \"sky\": \"clear\"}", "Thinking": "", "Images": [], "ToolCalls": [], "ToolName": "get_weather", "ToolCallID": "call_2"},
    {"Role": "assistant", "Content": "Paris: 18°C, cloudy. Tokyo: 25°C, clear.", "Thinking": "", "Images": [], "ToolCalls": [], "ToolName": "", "ToolCallID": ""},
    {"Role": "user", "Content": "Thanks! Convert Tokyo to <fahrenheit>.", "Thinking": "", "Images": [], "ToolCalls": [], "ToolName": "", "ToolCallID": ""}
  ],
  "Tools": [
    {"Type": "function", "Items": null, "Function": {"Name": "get_weather", "Description": "Get the current weather for a location.",
      "Parameters": {"Type": "object", "Defs": null, "Items": null, "Required": ["location"],
        "Properties": {
          "location": {"Type": ["string"], "Description": "City name, e.g. Paris", "Enum": null},
          "unit": {"Type": ["string"], "Description": "Temperature unit", "Enum": ["celsius", "fahrenheit"]},
          "days": {"Type": ["integer", "null"], "Description": "Forecast days", "Enum": null}
        }}}},
    {"Type": "function", "Items": null, "Function": {"Name": "convert_temp", "Description": "Convert a temperature & report it.",
      "Parameters": {"Type": "object", "Defs": null, "Items": null, "Required": ["value", "to"],
        "Properties": {
          "value": {"Type": ["number"], "Description": "The value", "Enum": null},
          "to": {"Type": ["string"], "Description": "Target unit", "Enum": ["C", "F"]}
        }}}}
  ],
  "Response": "", "Think": false, "ThinkLevel": "", "IsThinkSet": false
}`

const chatml = `{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
`

const llama3 = `{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{- if .System }}

{{ .System }}
{{- end }}
{{- if .Tools }}

Cutting Knowledge Date: December 2023

When you receive a tool call response, use the output to format an answer to the original user question.

You are a helpful assistant with tool calling capabilities.
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>
{{- if and $.Tools $last }}

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.

{{ range $.Tools }}
{{- json . }}
{{ end }}
{{- end }}

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>
{{- if .ToolCalls }}

{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "parameters": {{ json .Function.Arguments }}}{{ end }}
{{- else }}

{{ .Content }}
{{- end }}{{ if not $last }}<|eot_id|>{{ end }}
{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}
{{- end }}`

const gemma = `{{- $system := "" }}
{{- range $i, $m := .Messages }}
{{- if eq .Role "system" }}{{ $system = .Content }}{{ continue }}{{ end }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if $system }}{{ $system }}

{{ $system = "" }}{{ end }}{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}`

const mistral = `{{- range $index, $_ := .Messages }}
{{- if eq .Role "system" }}[SYSTEM_PROMPT]{{ .Content }}[/SYSTEM_PROMPT]
{{- else if eq .Role "user" }}
{{- if and (le (len (slice $.Messages $index)) 2) $.Tools }}[AVAILABLE_TOOLS]{{ json $.Tools }}[/AVAILABLE_TOOLS]
{{- end }}[INST]{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }}
{{- if .Content }}{{ .Content }}
{{- if not (eq (len (slice $.Messages $index)) 1) }}</s>
{{- end }}
{{- else if .ToolCalls }}[TOOL_CALLS][
{{- range $i, $tc := .ToolCalls }}{{ if $i }}, {{ end }}{"name": "{{ $tc.Function.Name }}", "arguments": {{ json $tc.Function.Arguments }}, "id": "{{ $tc.ID }}"}
{{- end }}]</s>
{{- end }}
{{- else if eq .Role "tool" }}[TOOL_RESULTS]{"content": {{ .Content }}, "call_id": "{{ .ToolCallID }}"}[/TOOL_RESULTS]
{{- end }}
{{- end }}`

const phi3 = `{{- range .Messages }}<|{{ .Role }}|>
{{ .Content }}<|end|>
{{ end }}<|assistant|>
`

const qwen = `{{- if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{"type": "{{ .Type }}", "function": {"name": "{{ .Function.Name }}", "description": {{ json .Function.Description }}, "parameters": {{ json .Function.Parameters }}}}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}
{{- range .ToolCalls }}<tool_call>
{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}
</tool_call>
{{ end }}
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}`

const legacy = `{{ if .System }}<|system|>
{{ .System }}</s>
{{ end }}{{ if .Prompt }}<|user|>
{{ .Prompt }}</s>
{{ end }}<|assistant|>
{{ .Response }}</s>
`

const thinking = `{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|user|>{{ .Content }}
{{- else if eq .Role "assistant" }}<|assistant|>
{{- if and $.IsThinkSet .Thinking (not $last) }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}
{{- end }}
{{- if and $last (ne .Role "assistant") }}<|assistant|>
{{- if and $.IsThinkSet (not $.Think) }}<think></think>
{{- else if $.Think }}<think level="{{ $.ThinkLevel }}">
{{- end }}
{{- end }}
{{- end }}`

const commandR = `{{- if .System }}<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{{ .System }}<|END_OF_TURN_TOKEN|>{{ end }}
{{- range .Messages }}
{{- if eq .Role "system" }}{{ continue }}{{ end }}
{{- if eq .Role "user" }}<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{{ .Content }}
{{- else if eq .Role "assistant" }}<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>{{ .Content }}
{{- end }}<|END_OF_TURN_TOKEN|>
{{- end }}<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>`

const toolsDump = `{{- range .Tools }}{{ .Function.Name }}({{ range $i, $name := .Function.Parameters.Required }}{{ if $i }}, {{ end }}{{ $name }}{{ end }})
{{- range $name, $property := .Function.Parameters.Properties }}
  - {{ $name }}: {{ $property.Type }} {{ if $property.Enum }}one of {{ $property.Enum }} {{ end }}// {{ $property.Description }}
{{- end }}
{{ end }}{{ with index .Messages 2 }}{{ range .ToolCalls }}{{ .Function.Name }} {{ .Function.Arguments }} #{{ .Function.Index }}
{{ end }}{{ end }}`

const fim = `{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>
{{- else }}{{ .Prompt }}
{{- end }}`

func chatTemplates() {
	add("chat_chatml", chatml, convo)
	add("chat_chatml_single", chatml, convoNoSystem)
	add("chat_llama3", llama3, convo)
	addI("chat_llama3_tools", llama3, toolConvo)
	add("chat_llama3_no_system", llama3, convoNoSystem)
	add("chat_gemma", gemma, convo)
	add("chat_gemma_no_system", gemma, convoNoSystem)
	addI("chat_mistral_tools", mistral, toolConvo)
	add("chat_mistral_plain", mistral, convo)
	add("chat_phi3", phi3, convo)
	addI("chat_qwen_tools", qwen, toolConvo)
	add("chat_qwen_plain", qwen, convo)
	add("chat_qwen_legacy_branch", qwen, `{"System": "Be terse.", "Prompt": "Why is the sky blue?", "Response": "", "Messages": []}`)
	add("chat_qwen_legacy_with_response", qwen, `{"System": "", "Prompt": "Hi", "Response": "Hello!", "Messages": []}`)
	add("chat_legacy_full", legacy, `{"System": "You are Mario.", "Prompt": "Who are you?", "Response": "It's-a me!"}`)
	add("chat_legacy_no_system", legacy, `{"System": "", "Prompt": "Who are you?", "Response": ""}`)
	add("chat_legacy_missing_keys", legacy, `{"Prompt": "Only a prompt"}`)
	addN("chat_legacy_simple", `{{ if .System }}{{ .System }} {{ end }}{{ if .Prompt }}USER: {{ .Prompt }} {{ end }}ASSISTANT: {{ .Response }}`,
		`{"System": "sys", "Prompt": "hi", "Response": ""}`, "")
	add("chat_thinking_on", thinking, `{"Messages": [
		{"Role": "user", "Content": "2+2?", "Thinking": ""},
		{"Role": "assistant", "Content": "4", "Thinking": "Simple addition."},
		{"Role": "user", "Content": "3+3?", "Thinking": ""}],
		"Think": true, "ThinkLevel": "medium", "IsThinkSet": true}`)
	add("chat_thinking_off", thinking, `{"Messages": [
		{"Role": "user", "Content": "2+2?", "Thinking": ""},
		{"Role": "assistant", "Content": "4", "Thinking": "Simple addition."},
		{"Role": "user", "Content": "3+3?", "Thinking": ""}],
		"Think": false, "ThinkLevel": "", "IsThinkSet": true}`)
	add("chat_thinking_unset", thinking, `{"Messages": [
		{"Role": "user", "Content": "2+2?", "Thinking": ""}],
		"Think": false, "ThinkLevel": "", "IsThinkSet": false}`)
	add("chat_command_r_continue", commandR, convo)
	addIN("chat_tools_dump_maps", toolsDump, toolConvo,
		"plain maps print as map[...] (Ollama's Stringer types would print JSON); Type lists print as [string]")
	add("chat_tools_print_whole", `{{ range .Tools }}{{ . }}
{{ end }}`, toolConvo)
	add("chat_fim", fim, `{"Prompt": "def add(a, b):", "Suffix": "    return c", "Response": ""}`)
	add("chat_fim_no_suffix", fim, `{"Prompt": "def add(a, b):", "Suffix": "", "Response": ""}`)
	add("chat_images_field", `{{ range .Messages }}{{ .Role }}: {{ if .Images }}[{{ len .Images }} image(s)] {{ end }}{{ .Content }}
{{ end }}`, `{"Messages": [{"Role": "user", "Content": "[img-0] What is this?", "Images": ["aGVsbG8="]}, {"Role": "assistant", "Content": "A picture.", "Images": []}]}`)
	add("chat_tool_index_float", `{{ range .ToolCalls }}{{ if eq .Function.Index 0 }}first{{ end }}{{ end }}`,
		`{"ToolCalls": [{"Function": {"Index": 0, "Name": "f"}}]}`)
	addI("chat_tool_index_int", `{{ range .ToolCalls }}{{ if eq .Function.Index 0 }}first {{ end }}{{ .Function.Index }}{{ end }}`,
		`{"ToolCalls": [{"Function": {"Index": 0, "Name": "f"}}, {"Function": {"Index": 1, "Name": "g"}}]}`)
}
