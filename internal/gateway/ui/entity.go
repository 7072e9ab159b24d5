package ui

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/config"
	"github.com/sightline/sightline/internal/web"
)

// entity describes one ordered list of the configuration that the pages
// edit row by row (sender groups, mail flow policies, RAT entries, content
// filters, reputation lists, SMTP routes): its location in the
// configuration, its key, its form and how to read that form. Its methods
// make the handlers for add, edit, delete and move.
type entity[T any] struct {
	what     string // "sender group", for titles and messages
	title    string // "Sender Group"
	list     string // path of the page that lists the items
	base     string // path of the items: base+"/new", base+"/{key}/edit" …
	page     string // template of the form
	keyField string // form field that holds the key, marked on a duplicate
	fold     bool   // keys compare without case

	items func(*config.Config) *[]T
	key   func(T) string
	// parse reads the posted form into an item, recording problems in f
	// (with f.raw for text that did not parse).
	parse func(r *http.Request, f *form[T]) T
	// extra gives the form's choices (e.g. the flow policy names); nil for none.
	extra func(*config.Config) any
	// blank is a new item's defaults; nil means the zero T.
	blank func() T
	// renamed updates references after the key of an item changed, and
	// deleting refuses to delete a referenced item; both may be nil.
	renamed  func(c *config.Config, old, new string)
	deleting func(c *config.Config, key string) error
}

// entityHandlers are the handlers of one entity, for Routes.
type entityHandlers struct {
	base                                  string
	newForm, editForm, save, remove, move http.HandlerFunc
}

func (e *entity[T]) handlers(u *UI) entityHandlers {
	return entityHandlers{e.base, e.newForm(u), e.editForm(u), e.save(u), e.remove(u), e.move(u)}
}

// form is the data of an entity's form page.
type form[T any] struct {
	settingsData
	Title  string
	New    bool
	Orig   string // the key of the item edited, "" for a new one
	Action string // where the form posts
	Back   string // the list page
	Item   T
	Raw    map[string]string // submitted text that did not parse, by field
	Extra  any
}

// raw keeps the text of a field that did not parse, to show it again.
func (f *form[T]) raw(field, value string) {
	if f.Raw == nil {
		f.Raw = map[string]string{}
	}
	f.Raw[field] = value
}

func (e *entity[T]) same(a, b string) bool {
	if e.fold {
		return strings.EqualFold(a, b)
	}
	return a == b
}

func (e *entity[T]) find(c *config.Config, key string) int {
	return indexOf(*e.items(c), func(it T) bool { return e.same(e.key(it), key) })
}

func (e *entity[T]) itemPath(key string) string { return e.base + "/" + url.PathEscape(key) }

func (e *entity[T]) render(u *UI, w http.ResponseWriter, r *http.Request, status int, c *config.Config, f *form[T]) {
	f.CanEdit = true // only editors reach forms
	f.Back = e.list
	if e.extra != nil {
		f.Extra = e.extra(c)
	}
	if f.New {
		f.Title, f.Action = "Add "+e.title, e.base
	} else {
		f.Title, f.Action = "Edit "+e.title, e.itemPath(f.Orig)
	}
	u.rd.Render(w, r, status, e.page, web.PageData{Title: f.Title, Data: f})
}

// newForm serves the empty form.
func (e *entity[T]) newForm(u *UI) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := u.view(w, r)
		if c == nil {
			return
		}
		f := &form[T]{New: true}
		if e.blank != nil {
			f.Item = e.blank()
		}
		e.render(u, w, r, http.StatusOK, c, f)
	}
}

// editForm serves the form of the item named in the path.
func (e *entity[T]) editForm(u *UI) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := u.view(w, r)
		if c == nil {
			return
		}
		i := e.find(c, r.PathValue("key"))
		if i < 0 {
			u.rd.Error(w, r, notFound(e.what, r.PathValue("key")))
			return
		}
		it := (*e.items(c))[i]
		e.render(u, w, r, http.StatusOK, c, &form[T]{Item: it, Orig: e.key(it)})
	}
}

// save stages a new item (no key in the path) or the edited one, and
// returns to the list; a problem shows the form again with the text as
// submitted, and stages nothing.
func (e *entity[T]) save(u *UI) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !u.parseForm(w, r) {
			return
		}
		orig := r.PathValue("key")
		f := &form[T]{New: orig == "", Orig: orig}
		f.Item = e.parse(r, f)
		if len(f.Errors) == 0 {
			edit := func(c *config.Config) error {
				items := e.items(c)
				at := -1
				if !f.New {
					if at = e.find(c, orig); at < 0 {
						return notFound(e.what, orig)
					}
				}
				key := e.key(f.Item)
				if j := e.find(c, key); j >= 0 && j != at {
					f.fail(e.keyField, "%s %q already exists.", capitalize(e.what), key)
					return errFormProblems
				}
				if at < 0 {
					*items = append(*items, f.Item)
					return nil
				}
				(*items)[at] = f.Item
				if e.renamed != nil && e.key(f.Item) != orig {
					e.renamed(c, orig, key)
				}
				return nil
			}
			if u.stage(w, r, &f.settingsData, e.list, edit) {
				return
			}
		}
		c := u.view(w, r)
		if c == nil {
			return
		}
		e.render(u, w, r, http.StatusBadRequest, c, f)
	}
}

// remove stages the deletion of the item named in the path.
func (e *entity[T]) remove(u *UI) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		var d settingsData
		handled := u.stage(w, r, &d, e.list, func(c *config.Config) error {
			i := e.find(c, key)
			if i < 0 {
				return notFound(e.what, key)
			}
			if e.deleting != nil {
				if err := e.deleting(c, key); err != nil {
					return err
				}
			}
			items := e.items(c)
			*items = append((*items)[:i], (*items)[i+1:]...)
			return nil
		})
		if !handled {
			u.failBack(w, r, e.list, d)
		}
	}
}

// move stages moving the item named in the path one place up or down.
func (e *entity[T]) move(u *UI) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		var d settingsData
		handled := u.stage(w, r, &d, e.list, func(c *config.Config) error {
			i := e.find(c, key)
			if i < 0 {
				return notFound(e.what, key)
			}
			return moveItem(*e.items(c), i, r.PostFormValue("dir"))
		})
		if !handled {
			u.failBack(w, r, e.list, d)
		}
	}
}

// failBack returns to a list page with the problems of an action that
// has no form of its own (delete, move, enable).
func (u *UI) failBack(w http.ResponseWriter, r *http.Request, back string, d settingsData) {
	u.rd.Sessions().AddFlash(w, r, web.Flash{Kind: web.FlashError, Message: strings.Join(d.Errors, " ")})
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// errFormProblems aborts an edit whose problems are already on the form.
var errFormProblems = sightline.Errorf(sightline.Invalid, "")

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
