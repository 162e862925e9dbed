// Generates tests/golden/store/*.json: how Ollama's Go code encodes the store's JSON files.
//
// The structs copy the field names, order and tags of Ollama's manifest.Layer, manifest.Manifest,
// model.ConfigV2 and api.Message; params use the Go types api.FormatParams produces (float32 for
// float options, int64 for integers, []string for stop). Only the standard library is used, so any
// Go toolchain regenerates them:  go run tests/golden/store_golden.go tests/golden/store
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
)

type Layer struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	From      string `json:"from,omitempty"`
	Name      string `json:"name,omitempty"`
}

type Manifest struct {
	SchemaVersion int     `json:"schemaVersion"`
	MediaType     string  `json:"mediaType"`
	Config        Layer   `json:"config"`
	Layers        []Layer `json:"layers"`
}

type Draft struct {
	ModelFormat  string `json:"model_format,omitempty"`
	Architecture string `json:"architecture,omitempty"`
	TensorPrefix string `json:"tensor_prefix,omitempty"`
	Config       string `json:"config,omitempty"`
}

type ConfigV2 struct {
	ModelFormat   string   `json:"model_format"`
	ModelFamily   string   `json:"model_family"`
	ModelFamilies []string `json:"model_families"`
	ModelType     string   `json:"model_type"`
	FileType      string   `json:"file_type"`
	Renderer      string   `json:"renderer,omitempty"`
	Parser        string   `json:"parser,omitempty"`
	Requires      string   `json:"requires,omitempty"`
	RemoteHost    string   `json:"remote_host,omitempty"`
	RemoteModel   string   `json:"remote_model,omitempty"`
	Capabilities  []string `json:"capabilities,omitempty"`
	ContextLen    int      `json:"context_length,omitempty"`
	EmbedLen      int      `json:"embedding_length,omitempty"`
	BaseName      string   `json:"base_name,omitempty"`
	Draft         *Draft   `json:"draft,omitempty"`
	Architecture  string   `json:"architecture"`
	OS            string   `json:"os"`
}

type Message struct {
	Role       string   `json:"role"`
	Content    string   `json:"content"`
	Thinking   string   `json:"thinking,omitempty"`
	Images     []string `json:"images,omitempty"`
	ToolName   string   `json:"tool_name,omitempty"`
	ToolCallID string   `json:"tool_call_id,omitempty"`
}

// write encodes like Ollama: json.NewEncoder(f).Encode(v), which appends a newline.
func write(dir, name string, v any) {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		panic(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
		panic(err)
	}
}

func main() {
	dir := os.Args[1]
	const d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	const d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	const d3 = "sha256:3333333333333333333333333333333333333333333333333333333333333333"

	write(dir, "manifest.json", Manifest{
		SchemaVersion: 2,
		MediaType:     "application/vnd.docker.distribution.manifest.v2+json",
		Config:        Layer{MediaType: "application/vnd.docker.container.image.v1+json", Digest: d3, Size: 485},
		Layers: []Layer{
			{MediaType: "application/vnd.ollama.image.model", Digest: d1, Size: 98362432, From: "base:latest"},
			{MediaType: "application/vnd.ollama.image.template", Digest: d2, Size: 77},
			{MediaType: "application/vnd.ollama.image.json", Digest: d2, Size: 1, Name: "config <&> .json"},
		},
	})
	write(dir, "config-minimal.json", ConfigV2{
		ModelFormat: "gguf", ModelFamily: "llama", ModelFamilies: []string{"llama"},
		ModelType: "134.52M", FileType: "Q4_1", Architecture: "amd64", OS: "linux",
	})
	write(dir, "config-full.json", ConfigV2{
		ModelFormat: "gguf", ModelFamily: "qwen2", ModelFamilies: []string{"qwen2", "clip"},
		ModelType: "630.17M", FileType: "Q4_K_M", Renderer: "qwen3-coder", Parser: "qwen3-coder",
		Requires: "0.14.0", Capabilities: []string{"tools", "vision"}, ContextLen: 32768, EmbedLen: 896,
		BaseName: "Qwen2.5", Draft: &Draft{ModelFormat: "gguf", Architecture: "qwen2"},
		Architecture: "amd64", OS: "linux",
	})
	write(dir, "params.json", map[string]any{
		"temperature": float32(0.7),
		"top_p":       float32(0.95),
		"min_p":       float32(1e-05),
		"num_ctx":     int64(4096),
		"seed":        int64(-1),
		"use_mmap":    false,
		"stop":        []string{"<|im_end|>", "<|im_start|>", "a & b"},
	})
	write(dir, "messages.json", []Message{
		{Role: "system", Content: "Be brief <always>."},
		{Role: "user", Content: "Hi\n\tthere \u2028 \"quoted\""},
		{Role: "assistant", Content: "", Thinking: "hmm"},
	})
}
