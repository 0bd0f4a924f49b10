package cluster

import "testing"

func TestDialableHTTPAddr(t *testing.T) {
	for _, tc := range []struct {
		http, raft, want string
		fails            bool
	}{
		{"", "10.0.0.1:7000", "", false},
		{"10.0.0.2:8080", "10.0.0.1:7000", "10.0.0.2:8080", false},
		{"0.0.0.0:8080", "10.0.0.1:7000", "10.0.0.1:8080", false},
		{"[::]:8080", "[fd00::1]:7000", "[fd00::1]:8080", false},
		{":8080", "node-3.cairn:7000", "node-3.cairn:8080", false},
		{"10.0.0.2:0", "10.0.0.1:7000", "", true},
		{"nonsense", "10.0.0.1:7000", "", true},
	} {
		got, err := dialableHTTPAddr(tc.http, tc.raft)
		if (err != nil) != tc.fails || (!tc.fails && got != tc.want) {
			t.Errorf("dialableHTTPAddr(%q, %q) = %q, %v; want %q, fails %v", tc.http, tc.raft, got, err, tc.want, tc.fails)
		}
	}
}
