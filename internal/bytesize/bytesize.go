// Package bytesize formats byte counts for people. It is the one place
// that decides how a size reads in byz's messages, so a plan, a progress
// line and an error give the same count the same text.
//
// Formatters that must print an exact unit (a spec size that parses back,
// a save.dat size given in whole MiB) are not here: they belong with the
// format they round-trip.
package bytesize

import "fmt"

// Format gives n with a binary unit and one decimal ("512 B", "1.0 KiB",
// "135.0 MiB"): the unit is the largest whose count shows as at least 1.0,
// so a count just under a unit reads "1.0 MiB", never "1024.0 KiB".
func Format(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, exp := float64(n)/unit, 0
	for exp < 5 && v >= unit-0.05 {
		v /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}
