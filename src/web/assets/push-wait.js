// Waits for a push answer (or a device enrollment) without a reload: polls the status of this
// sign-in and, once it is no longer waiting, submits the page's own "continue" form, which checks
// on the server. Without JavaScript that button does the same. No inline script: strict CSP.
document.addEventListener('DOMContentLoaded', () => {
  const form = document.getElementById('push-check');
  const status = document.getElementById('push-status');
  if (!(form instanceof HTMLFormElement)) return;
  const statusUrl = form.dataset.status || '/signin/push/status';
  let delay = 1500;
  const check = async () => {
    try {
      const res = await fetch(statusUrl, { headers: { accept: 'application/json' }, cache: 'no-store' });
      const body = res.ok ? await res.json() : { status: 'GONE' };
      if (body.status !== 'WAITING') {
        if (status) status.textContent = 'Answer received…';
        form.submit();
        return;
      }
      delay = 1500;
    } catch {
      // Offline for a moment: wait longer, up to 10 s.
      delay = Math.min(delay * 2, 10000);
    }
    setTimeout(check, delay);
  };
  setTimeout(check, delay);
});
