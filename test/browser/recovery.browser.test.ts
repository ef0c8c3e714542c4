import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import {
  activateUntilCodeEntry,
  type Credentials,
  expectBanner,
  fieldError,
  inBrowser,
  linkIn,
  oathtoolCode,
  parseMailDate,
  provision,
  recipients,
  screenshot,
  skipWithoutTools,
  stepAt,
  submitForm,
  useRealBrowserStack,
  waitForMail,
} from '../helpers/real-browser.ts';

/**
 * Self-service unlock and password recovery as a user meets them: the product as its own process,
 * a real SMTP server, Debian's Chromium, and Debian's oathtool as the authenticator app.
 */

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const CREDENTIALS: Credentials = {
  password: 'copper kettle harbour 42',
  question: 'Name of your first teacher?',
  answer: 'Mrs Okonkwo',
};
const USERNAME_LABEL = 'Username (your email address)';

describe.skipIf(skipWithoutTools('the recovery browser test'))('recovery in a real browser', () => {
  const running = useRealBrowserStack();

  /** Checks the test-environment banner, then saves `recovery-<name>.png`. */
  const shot = (page: Page, name: string) => screenshot(page, 'recovery', name);

  /** The text of the page's main content, whitespace collapsed. */
  const mainText = async (page: Page) => ((await page.locator('main').textContent()) ?? '').replace(/\s+/g, ' ').trim();

  /**
   * Provisions a user with the CLI, activates them in `page` (password, question, Google
   * Authenticator) and signs out. Returns the setup key and the TOTP step the enrollment used.
   */
  async function activeUser(page: Page, email: string, first: string, last: string) {
    const { link } = await provision(running(), email, first, last);
    const secret = await activateUntilCodeEntry(page, link, email, CREDENTIALS, () => expectBanner(page));
    const enrollStep = stepAt(Date.now());
    await page.getByLabel('Six-digit code').fill(await oathtoolCode(secret, enrollStep));
    await expectBanner(page);
    expect(await submitForm(page, 'Verify')).toBe(303);
    await page.getByRole('heading', { name: `Welcome, ${first} ${last}` }).waitFor();
    await expectBanner(page);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('You have signed out.').waitFor();
    await expectBanner(page);
    return { secret, enrollStep };
  }

  /** Fills the sign-in form and submits it; returns the status of the answer. */
  async function signIn(page: Page, email: string, password: string) {
    await page.getByLabel(USERNAME_LABEL).fill(email);
    await page.getByLabel('Password', { exact: true }).fill(password);
    return submitForm(page, 'Sign in');
  }

  /** From "Verify it's you" to the home page with the code of `step`. */
  async function verifyCode(page: Page, secret: string, step: number, name: string, snap: string) {
    await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
    await page.getByLabel('Six-digit code').fill(await oathtoolCode(secret, step));
    await shot(page, snap);
    expect(await submitForm(page, 'Verify')).toBe(303);
    await page.getByRole('heading', { name: `Welcome, ${name}` }).waitFor();
  }

  it('locks after five wrong passwords, unlocks with the emailed link and the recovery question', async () => {
    const { smtp, product } = running();
    const email = 'nina.locked@acme.example';
    const contacts = loadConfig(product.env).contacts;

    await inBrowser(running(), 'recovery-failure-unlock', async (page) => {
      const { secret, enrollStep } = await activeUser(page, email, 'Nina', 'Locked');

      // Four wrong passwords: the same "sign-in failed" page each time.
      for (let i = 1; i <= 4; i++) {
        expect(await signIn(page, email, `wrong password number ${i}`)).toBe(401);
        expect(await page.getByRole('alert').textContent()).toContain(
          'Sign-in failed. Check your username and password.',
        );
        if (i === 1) await shot(page, '01-wrong-password');
      }
      // The fifth locks the account.
      const lockedAt = Date.now();
      expect(await signIn(page, email, 'wrong password number 5')).toBe(403);
      await page.getByRole('heading', { name: 'Your account is locked' }).waitFor();
      const lockedText = await mainText(page);
      expect(lockedText).toContain('It unlocks by itself 15 minutes after it was locked.');
      expect(lockedText).toContain(contacts.techSupportPhone);
      await shot(page, '02-locked');

      // Locked means locked: the right password is not even checked, and no code is asked for.
      await page.getByRole('link', { name: 'Back to sign in' }).click();
      await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      expect(await signIn(page, email, CREDENTIALS.password)).toBe(403);
      await page.getByRole('heading', { name: 'Your account is locked' }).waitFor();
      await shot(page, '03-locked-right-password');

      // The lockout email: when the account unlocks by itself, and a single-use unlock link.
      const lockMail = await waitForMail(smtp, email, /Your TRAQS account is locked/);
      const lockText = lockMail.text ?? '';
      expect(lockMail.subject).toContain('NTF (test)');
      const autoUnlock = /It unlocks by itself at (.+?)\.\n/.exec(lockText)?.[1];
      if (!autoUnlock) throw new Error(`No automatic unlock time in the email:\n${lockText}`);
      // Shown to the minute: 15 minutes after the lockout.
      expect(Math.abs(parseMailDate(autoUnlock) - (lockedAt + 15 * MINUTE_MS))).toBeLessThan(2 * MINUTE_MS);
      const linkExpiry = /The link expires at (.+?)\.\n/.exec(lockText)?.[1];
      if (!linkExpiry) throw new Error(`No link expiry in the email:\n${lockText}`);
      expect(Math.abs(parseMailDate(linkExpiry) - (lockedAt + 8 * HOUR_MS))).toBeLessThan(2 * MINUTE_MS);
      const unlockLink = linkIn(lockText, /^\/recover$/);
      expect(new URL(unlockLink).origin).toBe(product.idpUrl);
      expect(new URL(unlockLink).searchParams.get('token')).toBeTruthy();
      // One lockout, one email: the sixth attempt did not send another.
      expect(smtp.received.filter((m) => /account is locked/.test(m.subject ?? ''))).toHaveLength(1);

      // Opening the link only shows a page; Continue uses it.
      await page.goto(unlockLink);
      await page.getByRole('heading', { name: 'Unlock your account' }).waitFor();
      await shot(page, '04-unlock-link');
      expect(await submitForm(page, 'Continue')).toBe(303);
      await page.getByRole('heading', { name: 'Answer your recovery question' }).waitFor();
      expect((await page.locator('#recovery-question').textContent())?.trim()).toBe(CREDENTIALS.question);
      expect(await mainText(page)).toContain(email);
      await shot(page, '05-recovery-question');

      // A wrong answer: the error belongs to the answer field.
      await page.getByLabel('Your answer').fill('Mr Smith');
      expect(await submitForm(page, 'Unlock account')).toBe(403);
      await page.getByRole('heading', { name: 'Answer your recovery question' }).waitFor();
      expect(await fieldError(page, 'Your answer')).toBe('The answer does not match our records. Please try again.');
      await shot(page, '06-wrong-answer');

      // The right answer (compared without case and extra spaces) unlocks the account.
      await page.getByLabel('Your answer').fill('  mrs   OKONKWO ');
      expect(await submitForm(page, 'Unlock account')).toBe(200);
      await page.getByRole('heading', { name: 'Your account is unlocked' }).waitFor();
      expect(await page.getByRole('status').textContent()).toContain(`${email} is unlocked.`);
      await shot(page, '07-unlocked');

      // Unlocked is not signed in: password and a fresh code from the authenticator.
      await page.getByRole('link', { name: 'Sign in', exact: true }).click();
      await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      expect(await signIn(page, email, CREDENTIALS.password)).toBe(303);
      // RFC 6238 §5.2: the enrollment code is spent; the next step's code is within the drift window.
      await verifyCode(page, secret, Math.max(enrollStep + 1, stepAt(Date.now())), 'Nina Locked', '08-verify-code');
      await shot(page, '09-home-after-unlock');

      const unlockedMail = await waitForMail(smtp, email, /Your TRAQS account was unlocked/);
      expect(unlockedMail.text).toContain('Your account was unlocked with the link we emailed');

      // The link worked once.
      const again = await page.goto(unlockLink);
      expect(again?.status()).toBe(410);
      await page.getByRole('heading', { name: 'This link is no longer valid' }).waitFor();
      expect(await mainText(page)).toContain('This link has already been used.');
      await shot(page, '10-unlock-link-used');
    });
  }, 60_000);

  it('resets a forgotten password from the sign-in page, then still asks for the second factor', async () => {
    const { smtp, product } = running();
    const email = 'omar.forgot@acme.example';
    const madeUp = 'no.such.person@acme.example';
    const newPassword = 'velvet lantern orchard 17';

    await inBrowser(running(), 'recovery-failure-reset', async (page) => {
      const { secret, enrollStep } = await activeUser(page, email, 'Omar', 'Forgot');

      await page.getByRole('link', { name: 'Forgot password?' }).click();
      await page.getByRole('heading', { name: 'Reset your password' }).waitFor();
      await page.getByLabel(USERNAME_LABEL).fill(email);
      await shot(page, '11-forgot-password');
      expect(await submitForm(page, 'Send the email')).toBe(200);
      const knownMessage = await mainText(page);
      expect(knownMessage).toContain('If an account with that username can be reset, we have sent it an email');
      expect(await page.getByRole('status').isVisible()).toBe(true);
      await shot(page, '12-check-your-email');

      // A username nobody has: word for word the same answer (no user enumeration).
      await page.goto(`${product.idpUrl}/signin/forgot-password`);
      await page.getByLabel(USERNAME_LABEL).fill(madeUp);
      expect(await submitForm(page, 'Send the email')).toBe(200);
      expect(await mainText(page)).toBe(knownMessage);
      await shot(page, '13-check-your-email-unknown-user');

      // One reset email, to the real user only. The made-up username was submitted second, so by
      // the time the real one's mail arrived and a quiet second passed, anything for it would show.
      const resetMail = await waitForMail(smtp, email, /Reset your TRAQS password/);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const resetMails = smtp.received.filter((m) => /Reset your TRAQS password/.test(m.subject ?? ''));
      expect(resetMails.map((m) => recipients(m))).toEqual([[email]]);
      expect(smtp.received.filter((m) => recipients(m).includes(madeUp))).toHaveLength(0);
      const resetText = resetMail.text ?? '';
      expect(resetText).toContain('The link is valid for 8 hours');
      const resetLink = linkIn(resetText, /^\/recover$/);
      expect(new URL(resetLink).origin).toBe(product.idpUrl);

      await page.goto(resetLink);
      await page.getByRole('heading', { name: 'Reset your password' }).waitFor();
      await shot(page, '14-reset-link');
      expect(await submitForm(page, 'Continue')).toBe(303);
      await page.getByRole('heading', { name: 'Answer your recovery question' }).waitFor();
      expect((await page.locator('#recovery-question').textContent())?.trim()).toBe(CREDENTIALS.question);
      await page.getByLabel('Your answer').fill(CREDENTIALS.answer);
      await shot(page, '15-reset-question');
      expect(await submitForm(page, 'Continue')).toBe(303);

      // A common password is refused, with the reason at the field.
      await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
      expect(await mainText(page)).toContain(email);
      // Password recovery asks for the password only; the recovery question stays as it is.
      expect(await page.getByLabel('Question').count()).toBe(0);
      await page.getByLabel('New password').fill('password1234');
      expect(await submitForm(page, 'Continue')).toBe(400);
      await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
      expect(await fieldError(page, 'New password')).toContain('This password is too common');
      await shot(page, '16-common-password');

      // A good one: the password is set, and the second factor is still required.
      await page.getByLabel('New password').fill(newPassword);
      expect(await submitForm(page, 'Continue')).toBe(303);
      await verifyCode(page, secret, Math.max(enrollStep + 1, stepAt(Date.now())), 'Omar Forgot', '17-verify-code');
      await shot(page, '18-home-after-reset');

      const changedMail = await waitForMail(smtp, email, /Your TRAQS password was changed/);
      expect(changedMail.text).toContain('The password of your account was changed.');

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByText('You have signed out.').waitFor();
      expect(await signIn(page, email, CREDENTIALS.password)).toBe(401);
      expect(await page.getByRole('alert').textContent()).toContain('Sign-in failed.');
      await shot(page, '19-old-password-refused');
      expect(await signIn(page, email, newPassword)).toBe(303);
      await page.getByRole('heading', { name: "Verify it's you" }).waitFor();
      expect(await mainText(page)).toContain(`Signing in as ${email}`);
      await shot(page, '20-new-password-accepted');
    });
  }, 60_000);
});
