import type { Generated } from 'kysely';

/** Timestamps are integer milliseconds since the epoch in both dialects; flags are 0/1 integers. */
export interface FirmsTable {
  id: string;
  name: string;
  created_at: number;
}

export interface UsersTable {
  id: string;
  firm_id: string;
  /** The username: an email address, stored lower-cased. */
  login: string;
  email: string;
  first_name: string;
  last_name: string;
  mobile_phone: string | null;
  primary_phone: string | null;
  /** User preferences, JSON (e.g. `{"autoPush": true}`). */
  preferences: string;
  status: string;
  auth_mode: string;
  password_hash: string | null;
  password_changed_at: number | null;
  recovery_question: string | null;
  recovery_answer_hash: string | null;
  failed_attempts: number;
  lockout_count: number;
  locked_at: number | null;
  last_login_at: number | null;
  /** Factor type last verified with, offered first at the next sign-in. */
  last_factor_type: string | null;
  created_at: number;
  activated_at: number | null;
  status_changed_at: number;
}

export interface UserRolesTable {
  user_id: string;
  role: string;
}

export interface AppAssignmentsTable {
  user_id: string;
  app: string;
  assigned_at: number;
}

export interface FactorsTable {
  id: string;
  user_id: string;
  factor_type: string;
  provider: string;
  status: string;
  name: string;
  /** AES-256-GCM ciphertext of the TOTP seed (or other factor secret). */
  secret_enc: string | null;
  /** RFC 6238 time step of the last accepted code; codes at or before it are refused. */
  last_used_step: number | null;
  created_at: number;
  activated_at: number | null;
  last_used_at: number | null;
}

export interface EmailTokensTable {
  token_hash: string;
  user_id: string;
  purpose: string;
  created_at: number;
  expires_at: number;
  consumed_at: number | null;
  /** Wrong recovery answers or codes given with this link, over all its transactions. */
  attempts: number;
}

export interface SessionsTable {
  id_hash: string;
  user_id: string;
  created_at: number;
  last_seen_at: number;
  idle_expires_at: number;
  absolute_expires_at: number;
  ip: string | null;
  user_agent: string | null;
  amr: string;
  /** Last time the user verified a factor in this session (sign-in counts); for re-verification. */
  verified_at: number;
  revoked_at: number | null;
}

/** Browsers (or API clients) a user has signed in from, for "new sign-in" notices. */
export interface KnownDevicesTable {
  user_id: string;
  device_hash: string;
  first_seen_at: number;
  last_seen_at: number;
  user_agent: string | null;
  ip: string | null;
}

/** "This wasn't me" reports, for Operations to handle. */
export interface SuspiciousReportsTable {
  id: string;
  user_id: string;
  created_at: number;
  /** The notification the report came from (template name). */
  source: string;
  details: string;
  ip: string | null;
  user_agent: string | null;
  status: string;
  closed_at: number | null;
  closed_by: string | null;
  note: string | null;
}

export interface AuthnTransactionsTable {
  token_hash: string;
  user_id: string;
  /** Why the transaction exists: `signin`, `activation`, `recovery_password`, `recovery_unlock`. */
  flow: string;
  /** Okta transaction status: PASSWORD_RESET, MFA_ENROLL, MFA_ENROLL_ACTIVATE, MFA_REQUIRED… */
  status: string;
  factor_id: string | null;
  /** The activation or recovery link this transaction came from; consumed when it completes. */
  email_token_hash: string | null;
  /** What has been proven so far (`pwd`, `otp`, `email`), JSON array. */
  amr: string;
  /** Wrong recovery answers in this transaction. */
  attempts: number;
  /** SHA-256 of the device id given at the start (Okta's `context.deviceToken`), if any. */
  device_hash: string | null;
  created_at: number;
  expires_at: number;
  ended_at: number | null;
}

export interface OneTimeTokensTable {
  token_hash: string;
  user_id: string;
  purpose: string;
  amr: string;
  created_at: number;
  expires_at: number;
  consumed_at: number | null;
}

export interface OutboxTable {
  id: Generated<number>;
  message_id: string;
  to_address: string;
  subject: string;
  text_body: string;
  html_body: string;
  template: string;
  user_id: string | null;
  status: string;
  attempts: number;
  next_attempt_at: number;
  lease_until: number | null;
  last_error: string | null;
  created_at: number;
  sent_at: number | null;
}

export interface AuditEventsTable {
  id: Generated<number>;
  at: number;
  actor_id: string | null;
  action: string;
  target_id: string | null;
  outcome: string;
  ip: string | null;
  user_agent: string | null;
  details: string;
}

export interface SettingsTable {
  key: string;
  value: string;
}

/**
 * oidc-provider's models, one row per (model, id). `id_hash` is the hex SHA-256 of the id (for
 * tokens, the bearer secret itself); see `src/oauth/adapter.ts` for what `payload` holds.
 */
export interface OidcModelsTable {
  model: string;
  id_hash: string;
  /** JSON; the model's own id is replaced by a placeholder, so the row never holds it. */
  payload: string;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  account_id: string | null;
  expires_at: number | null;
  consumed_at: number | null;
}

/** JWS signing keys of the authorization server (`src/oauth/keys.ts`). */
export interface SigningKeysTable {
  /** RFC 7638 JWK thumbprint (SHA-256, base64url). */
  kid: string;
  alg: string;
  /** The private JWK (JSON), sealed with the environment's SecretBox (AES-256-GCM, aad = kid). */
  private_jwk_sealed: string;
  /** The public JWK (JSON) as published at the JWKS endpoint. */
  public_jwk: string;
  /** `active` (signs; at most one per `alg`) or `retiring` (verification only, until `retire_after`). */
  status: string;
  created_at: number;
  retire_after: number | null;
}

/** What the Programmatic page shows of a refresh token (`0003-api-tokens`); never the token. */
export interface ApiRefreshTokensTable {
  /** SHA-256 of the refresh token: the `oidc_models` key of its `RefreshToken` row. */
  id_hash: string;
  user_id: string;
  client_id: string;
  grant_id: string | null;
  label: string;
  created_at: number;
  expires_at: number;
  last_used_at: number | null;
  last_used_ip: string | null;
  /** When the "expires in 15 days" email was queued; set once, by exactly one node. */
  reminder_sent_at: number | null;
  revoked_at: number | null;
  /** `user`, `support`, `suspended`, `reported`… */
  revoked_reason: string | null;
}

/** Browser sessions of the portal (the TRAQS website); the cookie holds the id, the row its SHA-256. */
export interface PortalSessionsTable {
  id_hash: string;
  user_id: string;
  /** JSON array: the `amr` of the ID token the session was created from. */
  amr: string;
  created_at: number;
  last_seen_at: number;
  idle_expires_at: number;
  absolute_expires_at: number;
  ip: string | null;
  user_agent: string | null;
  revoked_at: number | null;
  /** The user's access token for the download API (Manual page), sealed; null until obtained. */
  download_token_sealed: string | null;
  download_token_expires_at: number | null;
}

/** A reference-data file the download service serves (`0004-reference-data`). */
export interface ReferenceFilesTable {
  id: string;
  facility: string;
  file: string;
  /** `YYYY-MM-DD`. */
  date: string;
  /** Relative to the environment's file store directory. */
  path: string;
  size: number;
  /** Hex SHA-256 of the file's bytes. */
  sha256: string;
  /** Data rows (without the header row). */
  records: number;
  created_at: number;
}

/** A user's entitlement to one facility's files. */
export interface EntitlementsTable {
  user_id: string;
  facility: string;
  granted_at: number;
}

/** A request of a firm's SAA for Operations (`0005-admin`). */
export interface AdminRequestsTable {
  id: string;
  firm_id: string;
  /** `new_user` or `deactivate`. */
  kind: string;
  /** JSON: `{email, firstName, lastName, apps}` for `new_user`, `{userId}` for `deactivate`. */
  payload: string;
  /** The user to deactivate, or the user an approved `new_user` request created. */
  target_user_id: string | null;
  /** The SAA's user id, or the id of the `saa` API token that asked. */
  requested_by: string;
  /** `pending`, `approved` or `rejected`. */
  status: string;
  decided_by: string | null;
  /** Why it was rejected (or a note on the approval). */
  reason: string | null;
  created_at: number;
  decided_at: number | null;
}

/** `SSWS` tokens of the management API (`0005-admin`); only the SHA-256 of a token is kept. */
export interface ManagementApiTokensTable {
  /** Okta-style id (`00T…`), shown in lists and the audit log. */
  id: string;
  name: string;
  token_hash: string;
  /** `saa`, `operations`, `support` or `admin`. */
  role: string;
  /** The firm of an `saa` token; null for the other roles. */
  firm_id: string | null;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

/** The credential of a `webauthn` factor (FastPass), one per factor (`0006-webauthn`). */
export interface WebAuthnCredentialsTable {
  factor_id: string;
  user_id: string;
  /** base64url, as the browser reports it. */
  credential_id: string;
  /** base64url of the COSE public key. */
  public_key: string;
  /** The last signature counter seen; an assertion must report a higher one (WebAuthn §7.2 step 21). */
  sign_count: number;
  /** JSON array of transports (`internal`, `usb`, `hybrid`…). */
  transports: string;
  aaguid: string | null;
  /** `singleDevice` or `multiDevice`. */
  device_type: string | null;
  backed_up: number;
  created_at: number;
}

/** A WebAuthn challenge: single use, short-lived, bound to a transaction or a session (`0006-webauthn`). */
export interface WebAuthnChallengesTable {
  /** base64url, as sent in the options. */
  challenge: string;
  user_id: string;
  /** `registration` or `authentication`. */
  purpose: string;
  /** `txn:<sha256 of the stateToken>` or `session:<sha256 of the session id>`. */
  binding: string;
  factor_id: string;
  created_at: number;
  expires_at: number;
  consumed_at: number | null;
}

/** The phone number of an imported (retired) SMS or voice-call factor (`0006-webauthn`). */
export interface FactorPhoneNumbersTable {
  factor_id: string;
  /** E.164, e.g. `+12125550100`. */
  phone_number: string;
}

/** A firm's identity provider (migration 0009). */
export interface IdentityProvidersTable {
  id: string;
  firm_id: string;
  name: string;
  protocol: string;
  /** JSON: see src/federation/model.ts. */
  settings: string;
  client_secret_sealed: string | null;
  sp_private_key_sealed: string;
  sp_certificate: string;
  created_at: number;
}

/** A sign-in sent to a firm's identity provider, until it comes back (migration 0009). */
export interface FederationRequestsTable {
  id: string;
  idp_id: string;
  binding_hash: string;
  nonce: string | null;
  verifier_sealed: string | null;
  login_hint: string | null;
  created_at: number;
  expires_at: number;
  answered_at: number | null;
  user_id: string | null;
  amr: string | null;
  consumed_at: number | null;
}

/** Ids of accepted SAML assertions, until they expire (migration 0009). */
export interface FederationAssertionsTable {
  idp_id: string;
  assertion_id: string;
  expires_at: number;
}

/** Per-address request counters shared by every node (migration 0010). */
export interface RateLimitsTable {
  key_hash: string;
  window_start: number;
  count: number;
}

export interface Database {
  firms: FirmsTable;
  users: UsersTable;
  user_roles: UserRolesTable;
  app_assignments: AppAssignmentsTable;
  factors: FactorsTable;
  email_tokens: EmailTokensTable;
  sessions: SessionsTable;
  authn_transactions: AuthnTransactionsTable;
  one_time_tokens: OneTimeTokensTable;
  outbox: OutboxTable;
  audit_events: AuditEventsTable;
  settings: SettingsTable;
  known_devices: KnownDevicesTable;
  suspicious_reports: SuspiciousReportsTable;
  oidc_models: OidcModelsTable;
  signing_keys: SigningKeysTable;
  api_refresh_tokens: ApiRefreshTokensTable;
  portal_sessions: PortalSessionsTable;
  reference_files: ReferenceFilesTable;
  entitlements: EntitlementsTable;
  admin_requests: AdminRequestsTable;
  management_api_tokens: ManagementApiTokensTable;
  webauthn_credentials: WebAuthnCredentialsTable;
  webauthn_challenges: WebAuthnChallengesTable;
  factor_phone_numbers: FactorPhoneNumbersTable;
  push_devices: PushDevicesTable;
  push_activations: PushActivationsTable;
  push_challenges: PushChallengesTable;
  push_sends: PushSendsTable;
  rate_limits: RateLimitsTable;
  identity_providers: IdentityProvidersTable;
  federation_requests: FederationRequestsTable;
  federation_assertions: FederationAssertionsTable;
}

/** A `traqs-verify` enrollment (migration 0008). */
export interface PushDevicesTable {
  id: string;
  factor_id: string;
  user_id: string;
  totp_factor_id: string | null;
  name: string;
  /** The device's P-256 public key, a JWK (JSON). */
  public_key: string;
  /** SHA-256 (hex) of the device's bearer token. */
  token_hash: string;
  created_at: number;
  last_seen_at: number | null;
}

/** A single-use activation code for a pending push factor. */
export interface PushActivationsTable {
  code_hash: string;
  code_sealed: string;
  user_id: string;
  factor_id: string;
  created_at: number;
  expires_at: number;
  consumed_at: number | null;
}

/** One push sent to a device, with its number challenge. */
export interface PushChallengesTable {
  id: string;
  user_id: string;
  factor_id: string;
  txn_hash: string;
  seq: number;
  /** JSON array of the three numbers the device offers. */
  numbers: string;
  correct_number: number;
  status: string;
  reason: string | null;
  /** JSON: app, ip, place, browser. */
  context: string;
  created_at: number;
  expires_at: number;
  answered_at: number | null;
  result_seen_at: number | null;
}

/** Pushes sent per sign-in transaction. */
export interface PushSendsTable {
  txn_hash: string;
  count: number;
}
