package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// decodeObject decodes one API object as the client does (numbers kept).
func decodeObject(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCell checks how each kind of JSON value shows in a table.
func TestCell(t *testing.T) {
	t.Parallel()
	obj := decodeObject(t, `{"s":"a b","t":true,"f":false,"n":12345678901234567890,"x":1.5,
		"z":null,"args":{"x-max-length":10,"x-queue-type":"classic"},"empty":{},"list":[1,"<a>"]}`)
	tests := map[string]string{
		"s": "a b", "t": "true", "f": "false", "n": "12345678901234567890", "x": "1.5",
		"z": "", "missing": "", "args": `{"x-max-length":10,"x-queue-type":"classic"}`,
		"empty": "{}", "list": `[1,"<a>"]`,
	}
	for k, want := range tests {
		if got := cell(obj[k]); got != want {
			t.Errorf("cell(%s) = %q, want %q", k, got, want)
		}
	}
	if got := cell(toTags([]any{"administrator", "monitoring"})); got != "[administrator, monitoring]" {
		t.Errorf("tags from array = %q", got)
	}
	if got := cell(toTags("administrator, management")); got != "[administrator, management]" {
		t.Errorf("tags from string = %q", got)
	}
	if got := cell(toTags("")); got != "[]" {
		t.Errorf("no tags = %q", got)
	}
}

// TestFormats checks the table and JSON renderings of rows.
func TestFormats(t *testing.T) {
	t.Parallel()
	cols := []string{"name", "messages", "durable", "arguments"}
	rows := [][]any{
		{"q1", json.Number("3"), true, map[string]any{}},
		{"q/2", json.Number("0"), false, map[string]any{"x-max-priority": json.Number("5")}},
	}
	wantTable := "name\tmessages\tdurable\targuments\n" +
		"q1\t3\ttrue\t{}\n" +
		"q/2\t0\tfalse\t{\"x-max-priority\":5}\n"
	if got := string(formatTable(cols, rows, true)); got != wantTable {
		t.Errorf("table:\n%s\nwant:\n%s", got, wantTable)
	}
	if got := string(formatTable(cols, rows, false)); got != strings.SplitN(wantTable, "\n", 2)[1] {
		t.Errorf("table without headers:\n%s", got)
	}
	wantJSON := "[\n" +
		`{"name":"q1","messages":3,"durable":true,"arguments":{}},` + "\n" +
		`{"name":"q/2","messages":0,"durable":false,"arguments":{"x-max-priority":5}}` + "\n]\n"
	got := formatJSON(cols, rows)
	if string(got) != wantJSON {
		t.Errorf("json:\n%s\nwant:\n%s", got, wantJSON)
	}
	if !json.Valid(got) {
		t.Errorf("json output is not valid JSON")
	}
	if got := string(formatJSON(cols, nil)); got != "[]\n" {
		t.Errorf("empty json = %q", got)
	}
}

// TestColumnsFor checks default, chosen and unknown columns.
func TestColumnsFor(t *testing.T) {
	t.Parallel()
	cols, err := queuesListing.columnsFor(nil)
	if err != nil || !slices.Equal(cols, []string{"name", "messages"}) {
		t.Errorf("default queue columns = %q, %v", cols, err)
	}
	cols, err = queuesListing.columnsFor([]string{"messages_ready", "name"})
	if err != nil || !slices.Equal(cols, []string{"messages_ready", "name"}) {
		t.Errorf("chosen columns = %q, %v", cols, err)
	}
	_, err = queuesListing.columnsFor([]string{"name", "colour", "size"})
	if exitCodeFor(err) != exitUsage || !strings.Contains(err.Error(), "colour,size") {
		t.Errorf("unknown columns: %v", err)
	}
}

// TestGetters checks the columns whose API field has another name or shape.
func TestGetters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		list *listing
		obj  string
		want map[string]string
	}{
		{bindingsListing,
			`{"source":"amq.topic","vhost":"/","destination":"q","destination_type":"queue","routing_key":"a.#","arguments":{},"properties_key":"a.%23"}`,
			map[string]string{"source_name": "amq.topic", "source_kind": "exchange", "destination_name": "q",
				"destination_kind": "queue", "routing_key": "a.#", "arguments": "{}", "properties_key": "a.%23"}},
		{consumersListing,
			`{"queue":{"name":"q1","vhost":"/"},"channel_details":{"name":"127.0.0.1:5000 -> 127.0.0.1:5672 (1)"},"consumer_tag":"ctag","ack_required":true,"prefetch_count":10,"active":true,"arguments":{}}`,
			map[string]string{"queue_name": "q1", "channel_pid": "127.0.0.1:5000 -> 127.0.0.1:5672 (1)",
				"consumer_tag": "ctag", "ack_required": "true", "prefetch_count": "10", "active": "true", "activity_status": ""}},
		{channelsListing,
			`{"name":"c (1)","connection_details":{"name":"c"},"user":"guest","consumer_count":2}`,
			map[string]string{"pid": "c (1)", "connection": "c", "user": "guest", "consumer_count": "2"}},
		{connectionsListing, `{"name":"c","peer_host":"127.0.0.1","peer_port":5000}`,
			map[string]string{"pid": "c", "peer_host": "127.0.0.1", "peer_port": "5000"}},
		{usersListing, `{"name":"guest","tags":["administrator"]}`,
			map[string]string{"user": "guest", "tags": "[administrator]"}},
		{policiesListing, `{"vhost":"/","name":"ttl","pattern":"^q","apply-to":"queues","definition":{"message-ttl":1000},"priority":1}`,
			map[string]string{"apply-to": "queues", "definition": `{"message-ttl":1000}`, "priority": "1"}},
	}
	for _, tt := range tests {
		obj := decodeObject(t, tt.obj)
		for col, want := range tt.want {
			if got := cell(tt.list.getter(col)(obj)); got != want {
				t.Errorf("%s of %s = %q, want %q", col, tt.obj, got, want)
			}
		}
	}
}

// TestJSONObject checks which definitions count as one JSON object.
func TestJSONObject(t *testing.T) {
	t.Parallel()
	good := []string{`{}`, ` {"ha-mode":"all"} `, `{"a":{"b":[1,2]}}`}
	bad := []string{``, `null`, `[]`, `"x"`, `{"a":1} {}`, `{"a":1}x`, `{"a":`, `{'a':1}`}
	for _, s := range good {
		if _, err := jsonObject(s); err != nil {
			t.Errorf("jsonObject(%q): %v", s, err)
		}
	}
	for _, s := range bad {
		if _, err := jsonObject(s); err == nil {
			t.Errorf("jsonObject(%q) accepted", s)
		}
	}
}
