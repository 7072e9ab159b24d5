// Devices page: "Select all" and the count of selected devices.
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  var count = document.getElementById("selection-count");
  var del = document.getElementById("delete-selected");
  if (!count) return;
  function boxes() { return document.querySelectorAll("input.select-device"); }
  function update() {
    var n = 0;
    boxes().forEach(function (b) { if (b.checked) n++; });
    count.textContent = n + " selected";
    if (del) del.disabled = n === 0;
    if (all) {
      all.checked = n > 0 && n === boxes().length;
      all.indeterminate = n > 0 && n < boxes().length;
    }
  }
  if (all) all.addEventListener("change", function () {
    boxes().forEach(function (b) { b.checked = all.checked; });
    update();
  });
  document.addEventListener("change", function (e) {
    if (e.target.classList && e.target.classList.contains("select-device")) update();
  });
  update();
})();
