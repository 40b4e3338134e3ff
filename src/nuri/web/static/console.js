// Live overview: re-fetch the server-rendered tiles every 5 seconds (no library, no network beyond Nuri).
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var url = live.getAttribute("data-live");
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { "x-console-fetch": "1" } })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/console/login?expired=1"); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) {
          live.innerHTML = html;
          live.setAttribute("data-updated", String(Date.now()));
        }
      })
      .catch(function () { /* offline for a moment: try again on the next tick */ });
  }
  window.setInterval(refresh, 5000);
})();
