package radio

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Sentinels for settings the API and the spec must refuse.
var (
	ErrChannel = errors.New("invalid wifi channel")
	ErrSSID    = errors.New("invalid SSID")
)

// channels5GHz are the 20 MHz channel numbers of the 5 GHz band from 36 to
// 165 (UNII-1 to UNII-3). Numbers between them (37, 38, …) name no 20 MHz
// channel; whether one is allowed where the node stands is the card's
// regulatory answer, checked by ChooseMode.
var channels5GHz = []int{
	36, 40, 44, 48, 52, 56, 60, 64,
	100, 104, 108, 112, 116, 120, 124, 128, 132, 136, 140, 144,
	149, 153, 157, 161, 165,
}

// ValidateChannel accepts 2.4 GHz channels 1–13 and the 5 GHz channel
// numbers from 36 to 165. Channel 14 (Japan, 802.11b only) is refused.
func ValidateChannel(ch int) error {
	if ch >= 1 && ch <= 13 {
		return nil
	}
	for _, c := range channels5GHz {
		if c == ch {
			return nil
		}
	}
	if ch >= 36 && ch <= 165 {
		return fmt.Errorf("%w: %d is not a 5 GHz channel number (36, 40, 44 … 64, 100 … 144, 149 … 165)", ErrChannel, ch)
	}
	return fmt.Errorf("%w: %d (use 1–13 on 2.4 GHz or 36–165 on 5 GHz)", ErrChannel, ch)
}

// ChannelFreq converts a valid channel number to its centre frequency in
// MHz (IEEE 802.11: 2407 + 5n on 2.4 GHz, 5000 + 5n on 5 GHz).
func ChannelFreq(ch int) (int, error) {
	if err := ValidateChannel(ch); err != nil {
		return 0, err
	}
	if ch <= 13 {
		return 2407 + 5*ch, nil
	}
	return 5000 + 5*ch, nil
}

// FreqChannel converts a frequency back to a channel number, 0 if it is
// not a 2.4 or 5 GHz channel centre.
func FreqChannel(mhz int) int {
	switch {
	case mhz == 2484:
		return 14
	case mhz >= 2412 && mhz <= 2472 && (mhz-2407)%5 == 0:
		return (mhz - 2407) / 5
	case mhz >= 5160 && mhz <= 5885 && mhz%5 == 0:
		return (mhz - 5000) / 5
	}
	return 0
}

// ValidateSSID accepts 1 to 32 bytes (the 802.11 limit). Control
// characters are refused too: the SSID ends up in wpa_supplicant's
// configuration file and on the panel, where a newline or NUL would do
// harm and no one can type one anyway; and it must be UTF-8, for the same
// reason.
func ValidateSSID(ssid string) error {
	switch {
	case len(ssid) == 0:
		return fmt.Errorf("%w: empty", ErrSSID)
	case len(ssid) > 32:
		return fmt.Errorf("%w: %d bytes, at most 32", ErrSSID, len(ssid))
	case !utf8.ValidString(ssid):
		return fmt.Errorf("%w: not UTF-8", ErrSSID)
	}
	for _, r := range ssid {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control character %U", ErrSSID, r)
		}
	}
	return nil
}
