// Package e2e proves the seed's journey in a real browser: its test builds the
// sightline binary, starts `sightline serve` on loopback ports and, with
// chromedp driving Debian's Chromium, clicks and types through the gateway,
// exchange and console UIs as a person would, then walks each troubleshooting
// case of the seed (a second serve, started with --min-version, refuses the
// gateway's version), saving a screenshot of each step.
//
// The package holds tests only. Chromium is found as `chromium` on the PATH,
// or at the path in SIGHTLINE_TEST_CHROMIUM; when it is missing the test skips,
// unless CI=true, when it fails. Screenshots go to the directory in
// SIGHTLINE_SCREENSHOTS, else to a temporary one.
package e2e
