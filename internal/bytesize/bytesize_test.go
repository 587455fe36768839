package bytesize

import "testing"

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{
		0:                   "0 B",
		-5:                  "-5 B",
		1023:                "1023 B",
		1024:                "1.0 KiB",
		1536:                "1.5 KiB",
		1<<20 - 1:           "1.0 MiB",
		135 << 20:           "135.0 MiB",
		1 << 40:             "1.0 TiB",
		1<<62 + 1<<61:       "6.0 EiB",
		9223372036854775807: "8.0 EiB",
	} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}
