package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/web"
)

// quarantinePage is the data of quarantine.html.
type quarantinePage struct {
	Names    []string
	Current  string
	Messages []QuarantinedMessage
}

func (u *UI) quarantineIndex(w http.ResponseWriter, r *http.Request) {
	if len(u.cfg.QuarantineNames) == 0 {
		u.unavailable(w, r, "Quarantine")
		return
	}
	http.Redirect(w, r, quarantinePath(u.cfg.QuarantineNames[0]), http.StatusSeeOther)
}

func quarantinePath(name string) string { return "/monitor/quarantine/" + url.PathEscape(name) }

// knownQuarantine returns the configured name, or a NotFound error.
func (u *UI) knownQuarantine(name string) error {
	if !slices.Contains(u.cfg.QuarantineNames, name) {
		return sightline.Errorf(sightline.NotFound, "There is no quarantine named %q.", clip(name))
	}
	return nil
}

// quarantine lists the messages held in one quarantine.
func (u *UI) quarantine(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Quarantine == nil {
		u.unavailable(w, r, "Quarantine")
		return
	}
	name := r.PathValue("name")
	if err := u.knownQuarantine(name); err != nil {
		u.rd.Error(w, r, err)
		return
	}
	msgs, err := u.cfg.Quarantine.Quarantined(r.Context(), name)
	if err != nil {
		u.rd.Error(w, r, err)
		return
	}
	u.rd.Render(w, r, http.StatusOK, "quarantine.html", web.PageData{Title: "Quarantine",
		Data: quarantinePage{Names: u.cfg.QuarantineNames, Current: name, Messages: msgs}})
}

// quarantine actions.
type quarantineAct struct {
	verb, done string // "release", "Released"
	do         func(q Quarantines, ctx context.Context, mid int64) error
}

var (
	actRelease = quarantineAct{"release", "Released", Quarantines.Release}
	actDelete  = quarantineAct{"delete", "Deleted", Quarantines.Delete}
)

// maxBulk bounds the messages one post may act on.
const maxBulk = 500

// quarantineAction releases or deletes the MIDs posted (a row's button
// posts "mid"; the bulk buttons post the ticked "sel" boxes), then returns
// to the quarantine with a banner that counts what was done and names what
// failed.
func (u *UI) quarantineAction(act quarantineAct) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if u.cfg.Quarantine == nil {
			u.unavailable(w, r, "Quarantine")
			return
		}
		name := r.PathValue("name")
		if err := u.knownQuarantine(name); err != nil {
			u.rd.Error(w, r, err)
			return
		}
		if err := r.ParseForm(); err != nil {
			u.rd.Error(w, r, sightline.Wrap(sightline.Invalid, err, "The form could not be read."))
			return
		}
		raw := r.PostForm["mid"]
		if len(raw) == 0 {
			raw = r.PostForm["sel"]
		}
		s := u.rd.Sessions()
		back := quarantinePath(name)
		if len(raw) == 0 {
			s.AddFlash(w, r, web.Flash{Kind: web.FlashError, Message: "Select at least one message."})
			http.Redirect(w, r, back, http.StatusSeeOther)
			return
		}
		if len(raw) > maxBulk {
			u.rd.Error(w, r, sightline.Errorf(sightline.Invalid, "Select at most %d messages at a time.", maxBulk))
			return
		}
		mids := make([]int64, 0, len(raw))
		for _, v := range raw {
			mid, err := strconv.ParseInt(v, 10, 64)
			if err != nil || mid <= 0 {
				u.rd.Error(w, r, sightline.Errorf(sightline.Invalid, "%q is not a message number.", clip(v)))
				return
			}
			mids = append(mids, mid)
		}
		user := ""
		if sess, ok := web.SessionFrom(r.Context()); ok {
			user = sess.User.Name
		}
		var failed []string
		done := 0
		for _, mid := range mids {
			if err := act.do(u.cfg.Quarantine, r.Context(), mid); err != nil {
				if k := sightline.ErrorKind(err); k == sightline.Internal || k == sightline.Unavailable {
					u.log.Error("quarantine "+act.verb, "quarantine", name, "mid", mid, "user", user, "err", err)
				}
				failed = append(failed, fmt.Sprintf("MID %d: %s", mid, sightline.ErrorMessage(err)))
				continue
			}
			u.log.Info("quarantine "+act.verb, "quarantine", name, "mid", mid, "user", user)
			done++
		}
		if done > 0 {
			s.AddFlash(w, r, web.Flash{Kind: web.FlashSuccess, Message: fmt.Sprintf("%s %s.", act.done, plural(done, "message"))})
		}
		if len(failed) > 0 {
			s.AddFlash(w, r, web.Flash{Kind: web.FlashError, Message: fmt.Sprintf("Could not %s %s. %s",
				act.verb, plural(len(failed), "message"), strings.Join(failed, "; "))})
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
