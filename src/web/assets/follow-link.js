// Follows the link marked data-auto-follow on load: one step for the user, the same link without
// JavaScript. A link, not a form: CSP form-action does not govern it, so the sign-in form may
// lead to a firm's identity provider. No inline script: strict CSP.
document.addEventListener('DOMContentLoaded', () => {
  const link = document.querySelector('a[data-auto-follow]');
  if (link instanceof HTMLAnchorElement) link.click();
});
