package hookwire

import "testing"

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://loadtester.test/":                        "http://loadtester.test/",
		"https://u:p@hooks.example.com/x?token=t#f":      "https://hooks.example.com/x",
		"http://flagger-loadtester.test/gate/check":      "http://flagger-loadtester.test/gate/check",
		"http://u:p@bad host/%zz?token=t":                "http://bad host/%zz",
		"https://hooks.example.com:8443/a/b?sig=abc&x=1": "https://hooks.example.com:8443/a/b",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
