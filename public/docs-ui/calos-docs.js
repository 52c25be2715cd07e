// Renders this listener's API contract (/api/openapi.json) with Swagger UI.
// A file rather than an inline script, so the page needs no CSP exception.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The session cookie rides along on "Try it out" from this origin.
    withCredentials: true,
  });
});
