// Counts down to the code's expiry (data-expires, Unix seconds). No framework.
(function () {
  "use strict";
  var el = document.getElementById("countdown");
  if (!el) { return; }
  var end = Number(el.getAttribute("data-expires")) * 1000;
  var expiredText = el.getAttribute("data-expired-text") || "expired";
  function tick() {
    var left = Math.max(0, Math.round((end - Date.now()) / 1000));
    var m = Math.floor(left / 60);
    var s = left % 60;
    if (left > 0) {
      el.textContent = m + " min " + (s < 10 ? "0" : "") + s + " s";
      setTimeout(tick, 1000);
    } else {
      el.textContent = expiredText;
      document.body.classList.add("expired");
    }
  }
  tick();
}());

// Copy and print buttons (hidden until this script shows them).
(function () {
  "use strict";
  var copy = document.getElementById("copy");
  var status = document.getElementById("copy-status");
  if (copy && navigator.clipboard && navigator.clipboard.writeText) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      navigator.clipboard.writeText(copy.getAttribute("data-code")).then(function () {
        if (status) { status.textContent = copy.getAttribute("data-copied-text") || "Copied"; }
      });
    });
  }
  var print = document.getElementById("print");
  if (print && window.print) {
    print.hidden = false;
    print.addEventListener("click", function () { window.print(); });
  }
}());
