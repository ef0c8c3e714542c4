// Copy buttons (the portal's refresh-token page): a button with data-copy="ID" copies the text of
// the element with that id. Buttons start hidden, so without JavaScript none is shown that does
// nothing; the text can still be selected by hand. External file: the CSP forbids inline scripts.
(() => {
  const status = document.getElementById('copy-status');
  const say = (message) => {
    if (status) status.textContent = message;
  };
  for (const button of document.querySelectorAll('button[data-copy]')) {
    const target = document.getElementById(button.getAttribute('data-copy') || '');
    if (!target) continue;
    const label = button.textContent;
    button.hidden = false;
    button.addEventListener('click', async () => {
      const text = (target.textContent || '').trim();
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = 'Copied';
        say('Copied to the clipboard.');
        setTimeout(() => {
          button.textContent = label;
        }, 3000);
      } catch {
        // No clipboard access (an insecure origin, or refused): select the text for Ctrl+C instead.
        const range = document.createRange();
        range.selectNodeContents(target);
        const selection = window.getSelection();
        selection?.removeAllRanges();
        selection?.addRange(range);
        say('Selected: press Ctrl+C (or Cmd+C) to copy.');
      }
    });
  }
})();
