// Submits a form on load by clicking its button marked data-auto-submit: one step for the user,
// the same form without JavaScript (the button stays visible). No inline script: strict CSP.
document.addEventListener('DOMContentLoaded', () => {
  const button = document.querySelector('[data-auto-submit]');
  if (button instanceof HTMLButtonElement) button.click();
});
