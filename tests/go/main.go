// Command goreader is the Go reader of mcp-guard's differential tests (tests/test_differential.py):
// a minimal MCP server over stdio that reads its input the way Go servers built on encoding/json do.
//
// It decodes a stream of JSON values with json.NewDecoder (a value may span lines, a line may hold
// several values), and decodes every message, params and arguments into typed structs, so keys match
// case-insensitively with Unicode folding and the last match wins. A stream that stops being JSON
// ends the process, as it ends the connection of a Go server.
//
// Tools: safe, evil, pay {amount, to, delay} (sleeps delay seconds; to == "fail" answers with an
// isError result) and dashboard {dashboardUid}. Every executed call is appended to the file named by
// MCP_GUARD_TEST_CALLS as {"tool": NAME, "arguments": {...}}, the arguments as decoded, before the
// call does anything else; every byte read from stdin is appended to MCP_GUARD_TEST_WIRE first.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

type initializeParams struct {
	ProtocolVersion string `json:"protocolVersion"`
}

type callParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

type payArgs struct {
	Amount float64 `json:"amount"`
	To     string  `json:"to"`
	Delay  float64 `json:"delay"`
}

type dashboardArgs struct {
	DashboardUID string `json:"dashboardUid"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

var (
	callsPath string
	outMu     sync.Mutex
	callsMu   sync.Mutex
)

var tools = []map[string]any{
	{"name": "safe", "description": "Harmless.", "inputSchema": map[string]any{"type": "object"}},
	{"name": "evil", "description": "Always refused by the tests' policy.", "inputSchema": map[string]any{"type": "object"}},
	{"name": "pay", "description": "Pay amount to to.", "inputSchema": map[string]any{
		"type": "object",
		"properties": map[string]any{
			"amount": map[string]any{"type": "number"},
			"to":     map[string]any{"type": "string"},
			"delay":  map[string]any{"type": "number"},
		},
		"required": []string{"amount", "to"},
	}},
	{"name": "dashboard", "description": "Open a dashboard.", "inputSchema": map[string]any{
		"type":       "object",
		"properties": map[string]any{"dashboardUid": map[string]any{"type": "string"}},
		"required":   []string{"dashboardUid"},
	}},
}

func main() {
	callsPath = os.Getenv("MCP_GUARD_TEST_CALLS")
	wirePath := os.Getenv("MCP_GUARD_TEST_WIRE")
	if callsPath == "" || wirePath == "" {
		fmt.Fprintln(os.Stderr, "goreader: set MCP_GUARD_TEST_CALLS and MCP_GUARD_TEST_WIRE")
		os.Exit(2)
	}
	wire, err := os.OpenFile(wirePath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goreader:", err)
		os.Exit(2)
	}
	decoder := json.NewDecoder(io.TeeReader(os.Stdin, wire))
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); err != nil {
			if err == io.EOF {
				return
			}
			fmt.Fprintln(os.Stderr, "goreader: the input stream is not JSON any more, closing:", err)
			os.Exit(1)
		}
		handleValue(raw)
	}
}

func handleValue(raw json.RawMessage) {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var elements []json.RawMessage
		if err := json.Unmarshal(raw, &elements); err != nil || len(elements) == 0 {
			write(errorResponse(nil, -32600, "invalid batch"))
			return
		}
		var answers []*response
		for _, element := range elements {
			if answer := handleMessage(element, false); answer != nil {
				answers = append(answers, answer)
			}
		}
		if len(answers) > 0 {
			write(answers)
		}
		return
	}
	if answer := handleMessage(raw, true); answer != nil {
		write(answer)
	}
}

// handleMessage answers one message; with async, a slow call answers later on its own.
func handleMessage(raw json.RawMessage, async bool) *response {
	var m message
	if err := json.Unmarshal(raw, &m); err != nil {
		return errorResponse(nil, -32600, "invalid request: "+err.Error())
	}
	if m.Method == "" {
		return nil // a response, or nothing this server asked for
	}
	if m.ID == nil {
		return nil // a notification
	}
	if m.JSONRPC != "2.0" {
		return errorResponse(m.ID, -32600, "jsonrpc must be \"2.0\"")
	}
	switch m.Method {
	case "initialize":
		var params initializeParams
		_ = json.Unmarshal(m.Params, &params)
		version := params.ProtocolVersion
		if version == "" {
			version = "2025-06-18"
		}
		return result(m.ID, map[string]any{
			"protocolVersion": version,
			"capabilities":    map[string]any{"tools": map[string]any{}},
			"serverInfo":      map[string]any{"name": "go-reader", "version": "1.0.0"},
		})
	case "ping":
		return result(m.ID, map[string]any{})
	case "tools/list":
		return result(m.ID, map[string]any{"tools": tools})
	case "tools/call":
		return call(m.ID, m.Params, async)
	}
	return errorResponse(m.ID, -32601, "method not found: "+m.Method)
}

func call(id json.RawMessage, rawParams json.RawMessage, async bool) *response {
	var params callParams
	if err := json.Unmarshal(rawParams, &params); err != nil {
		return errorResponse(id, -32602, "invalid params: "+err.Error())
	}
	arguments := params.Arguments
	if len(arguments) == 0 || string(arguments) == "null" {
		arguments = json.RawMessage("{}")
	}
	switch params.Name {
	case "safe", "evil":
		var ignored map[string]any
		if err := json.Unmarshal(arguments, &ignored); err != nil {
			return errorResponse(id, -32602, "invalid arguments: "+err.Error())
		}
		record(params.Name, map[string]any{})
		return textResult(id, params.Name+" done", false)
	case "pay":
		var args payArgs
		if err := json.Unmarshal(arguments, &args); err != nil {
			return errorResponse(id, -32602, "invalid arguments: "+err.Error())
		}
		record("pay", map[string]any{"amount": args.Amount, "to": args.To, "delay": args.Delay})
		finish := func() *response {
			time.Sleep(time.Duration(args.Delay * float64(time.Second)))
			if args.To == "fail" {
				return textResult(id, fmt.Sprintf("payment of %v failed", args.Amount), true)
			}
			return textResult(id, fmt.Sprintf("paid %v to %s", args.Amount, args.To), false)
		}
		if async && args.Delay > 0 {
			go func() { write(finish()) }()
			return nil
		}
		return finish()
	case "dashboard":
		var args dashboardArgs
		if err := json.Unmarshal(arguments, &args); err != nil {
			return errorResponse(id, -32602, "invalid arguments: "+err.Error())
		}
		record("dashboard", map[string]any{"dashboardUid": args.DashboardUID})
		return textResult(id, "dashboard "+args.DashboardUID, false)
	}
	return textResult(id, "Unknown tool: "+params.Name, true)
}

func record(tool string, arguments map[string]any) {
	line, err := json.Marshal(map[string]any{"tool": tool, "arguments": arguments})
	if err != nil {
		line = []byte(fmt.Sprintf(`{"tool":%q,"arguments":{"unencodable":%q}}`, tool, err.Error()))
	}
	callsMu.Lock()
	defer callsMu.Unlock()
	calls, err := os.OpenFile(callsPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goreader:", err)
		os.Exit(2)
	}
	defer calls.Close()
	if _, err := calls.Write(append(line, '\n')); err != nil {
		fmt.Fprintln(os.Stderr, "goreader:", err)
		os.Exit(2)
	}
}

func result(id json.RawMessage, value any) *response {
	return &response{JSONRPC: "2.0", ID: id, Result: value}
}

func textResult(id json.RawMessage, text string, isError bool) *response {
	return result(id, map[string]any{
		"content": []map[string]any{{"type": "text", "text": text}},
		"isError": isError,
	})
}

func errorResponse(id json.RawMessage, code int, text string) *response {
	if id == nil {
		id = json.RawMessage("null")
	}
	return &response{JSONRPC: "2.0", ID: id, Error: &rpcError{Code: code, Message: text}}
}

func write(value any) {
	line, err := json.Marshal(value)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goreader: cannot encode an answer:", err)
		return
	}
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(line, '\n'))
}
