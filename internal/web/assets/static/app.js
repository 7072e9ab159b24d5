// Sightline shell: the few behaviours HTML cannot do alone. Every page works
// without this file; it adds confirm dialogs, copy buttons, expandable rows,
// touch/keyboard support for the drop-down navigation, and closes an icon
// menu (<details class="nav-icon">) on a click elsewhere or Escape.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Confirm dialogs: <form data-confirm="…"> or <button data-confirm="…">.
  document.addEventListener("submit", function (e) {
    var b = e.submitter;
    var msg = (b && b.getAttribute("data-confirm")) || e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  function closeMenus(except) {
    document.querySelectorAll(".nav-title[aria-expanded=true]").forEach(function (t) {
      if (t !== except) t.setAttribute("aria-expanded", "false");
    });
  }

  function closeIconMenus(except) {
    document.querySelectorAll("details.nav-icon[open]").forEach(function (d) {
      if (d !== except) d.open = false;
    });
  }

  // Focus moving elsewhere, by Tab or by a click, closes an open icon menu.
  document.addEventListener("focusin", function (e) {
    closeIconMenus(e.target.closest("details.nav-icon"));
  });

  document.addEventListener("click", function (e) {
    closeIconMenus(e.target.closest("details.nav-icon"));
    var t = e.target.closest("button");
    if (t && t.classList.contains("nav-title")) {
      var open = t.getAttribute("aria-expanded") !== "true";
      closeMenus(t);
      t.setAttribute("aria-expanded", String(open));
      return;
    }
    if (!e.target.closest(".nav-section")) closeMenus(null);
    if (!t) return;

    if (t.classList.contains("menu-toggle")) {
      t.setAttribute("aria-expanded", String(t.getAttribute("aria-expanded") !== "true"));
      return;
    }
    // Copy to clipboard: <button data-copy="text"> or data-copy-from="element id".
    var text = t.getAttribute("data-copy");
    var from = t.getAttribute("data-copy-from");
    if (from) {
      var el = document.getElementById(from);
      text = el ? (el.value !== undefined ? el.value : el.textContent) : null;
    }
    if (text !== null && navigator.clipboard) {
      navigator.clipboard.writeText(text).then(function () {
        var label = t.textContent;
        t.textContent = "Copied";
        setTimeout(function () { t.textContent = label; }, 1500);
      });
      return;
    }
    // Expandable rows: <button data-expand="row id" aria-expanded="false">.
    var id = t.getAttribute("data-expand");
    if (id) {
      var row = document.getElementById(id);
      if (!row) return;
      var show = row.hidden;
      row.hidden = !show;
      t.setAttribute("aria-expanded", String(show));
    }
  });

  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    var open = document.querySelector(".nav-title[aria-expanded=true]");
    closeMenus(null);
    if (open) open.focus();
    var icon = document.querySelector("details.nav-icon[open]");
    if (icon) {
      icon.open = false;
      icon.querySelector("summary").focus();
    }
  });
})();
