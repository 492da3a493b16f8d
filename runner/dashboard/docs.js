// /docs: Swagger UI on this server's OpenAPI document (a file, not an inline script: the
// Content-Security-Policy allows scripts of this origin only).
"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json", dom_id: "#swagger-ui", layout: "BaseLayout", deepLinking: true,
  showExtensions: true, showCommonExtensions: true, validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
