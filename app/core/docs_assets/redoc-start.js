// Starts ReDoc with the settings the page carries in its JSON data block (app/core/docs.py).
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("docs-config").textContent);
  Redoc.init(config.url, { hideDownloadButton: false }, document.getElementById("redoc"));
})();
