package main

import (
	"regexp"
)

// ANSI colours of the phases, as on a terminal.
const (
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	blue   = "\x1b[34m"
	reset  = "\x1b[0m"
)

// phaseWords are the words colorize colours: phases and outcomes.
var phaseWords = regexp.MustCompile(`\b(Succeeded|Initialized|Honoured|Failed|Refused|Stale|Progressing|Promoting|Finalising|Initializing|WaitingPromotion|Waiting|paused)\b`)

// colorize colours the phase and outcome words of rendered text when color is set. It runs
// after the table is aligned, so escape codes never count towards a column's width.
func colorize(text string, color bool) string {
	if !color {
		return text
	}
	return phaseWords.ReplaceAllStringFunc(text, func(w string) string {
		return phaseColor(w) + w + reset
	})
}

func phaseColor(word string) string {
	switch word {
	case "Succeeded", "Initialized", "Honoured":
		return green
	case "Failed", "Refused", "Stale":
		return red
	case "Waiting", "WaitingPromotion", "paused":
		return blue
	}
	return yellow
}
