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
