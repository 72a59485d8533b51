// Starts Swagger UI with the settings the page carries in its JSON data block (app/core/docs.py).
// A file, not an inline script, so the docs pages run under a CSP without 'unsafe-inline'.
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("docs-config").textContent);

  // Each load of the page offers a fresh Idempotency-Key: Execute twice and the second answer
  // is the replay of the first; reload the page for a new payment.
  function offerFreshKeys(spec) {
    if (!(window.crypto && crypto.randomUUID)) return spec; // only in a secure context
    for (const item of Object.values(spec.paths || {})) {
      for (const operation of Object.values(item)) {
        for (const parameter of (operation && operation.parameters) || []) {
          if (parameter.in === "header" && parameter.name === "Idempotency-Key") {
            parameter.example = crypto.randomUUID();
          }
        }
      }
    }
    return spec;
  }

  fetch(config.url)
    .then((response) => response.json())
    .then((spec) => {
      window.ui = SwaggerUIBundle({
        spec: offerFreshKeys(spec),
        dom_id: "#swagger-ui",
        layout: "BaseLayout",
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
        deepLinking: true,
        persistAuthorization: config.persistAuthorization,
        displayRequestDuration: true,
        showExtensions: true,
        showCommonExtensions: true,
        tryItOutEnabled: true,
        // No call to validator.swagger.io: the docs make no request outside this origin.
        validatorUrl: null,
      });
    });
})();
