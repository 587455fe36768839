package radio

import (
	"errors"
	"fmt"

	"byzantium/runtime/mesh/meshcfg"
)

// Sentinels for settings the API and the spec must refuse.
var (
	ErrChannel = errors.New("invalid wifi channel")
	ErrSSID    = errors.New("invalid SSID")
)

// ValidateChannel accepts 2.4 GHz channels 1–13 and the 5 GHz channel
// numbers from 36 to 165 (meshcfg.Channel: one rule for the spec, the API
// and the radios). Channel 14 (Japan, 802.11b only) is refused; whether a
// channel is allowed where the node stands is the card's regulatory
// answer, checked by ChooseMode.
func ValidateChannel(ch int) error {
	if err := meshcfg.Channel(ch); err != nil {
		return fmt.Errorf("%w: %w", ErrChannel, err)
	}
	return nil
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

// ValidateSSID accepts 1 to 32 bytes (the 802.11 limit) of UTF-8 without
// control characters (meshcfg.SSID): the SSID ends up in wpa_supplicant's
// configuration file and on the panel.
func ValidateSSID(ssid string) error {
	if err := meshcfg.SSID(ssid); err != nil {
		return fmt.Errorf("%w: %w", ErrSSID, err)
	}
	return nil
}
