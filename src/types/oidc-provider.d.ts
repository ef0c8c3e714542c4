/**
 * The parts of oidc-provider 9's API this codebase uses. The package ships no type declarations;
 * these follow its documentation (docs/README.md) and `lib/`. Koa's context is kept opaque except
 * for what we read.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface OidcClient {
    clientId: string;
    grantTypeAllowed(type: string): boolean;
  }

  export interface OidcParams {
    [key: string]: unknown;
  }

  export interface OidcToken {
    kind: string;
    jti: string;
    accountId?: string;
    clientId?: string;
    scope?: string;
    scopes: Set<string>;
    grantId?: string;
    amr?: string[];
    acr?: string;
    authTime?: number;
    iat?: number;
    exp?: number;
    expiration?: number;
    resourceServer?: { audience?: string | string[] };
  }

  export interface KoaContext {
    method: string;
    path: string;
    /** Koa's: the left-most X-Forwarded-For entry when `proxy` is on (client-chosen): see `clientIp`. */
    ip: string;
    /** Node's request; middie sets `ip` on it to Fastify's client address. */
    req: IncomingMessage & { ip?: unknown };
    type: string;
    body: unknown;
    status: number;
    headers: Record<string, string | string[] | undefined>;
    get(header: string): string;
    set(header: string, value: string): void;
    /** Koa's per-request namespace for what middleware passes on. */
    state: Record<string, unknown>;
    cookies: {
      get(name: string, opts?: { signed?: boolean }): string | undefined;
      set(name: string, value: string | null, opts?: Record<string, unknown>): void;
    };
    oidc: {
      route?: string;
      client?: OidcClient;
      params?: OidcParams;
      result?: { login?: unknown; consent?: unknown };
      session?: { accountId?: string; authTime?: number };
      entities: Record<string, unknown>;
      issuer: string;
    };
  }

  export interface Interaction {
    uid: string;
    iat: number;
    exp: number;
    returnTo: string;
    prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
    params: OidcParams & { client_id: string; scope?: string; resource?: string | string[]; redirect_uri?: string };
    session?: { accountId?: string; uid?: string };
    grantId?: string;
    lastSubmission?: Record<string, unknown>;
  }

  export interface GrantInstance {
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    addResourceScope(resource: string, scope: string): void;
    save(): Promise<string>;
  }

  export interface InteractionResults {
    login?: { accountId: string; amr?: string[]; acr?: string; ts?: number; remember?: boolean };
    consent?: { grantId: string };
    error?: string;
    error_description?: string;
  }

  export class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    /** The context of the request being handled (oidc-provider's own AsyncLocalStorage). */
    static get ctx(): KoaContext | undefined;
    proxy: boolean;
    Grant: {
      new (init: { accountId: string; clientId: string }): GrantInstance;
      find(id: string): Promise<GrantInstance | undefined>;
    };
    RefreshToken: { find(value: string): Promise<OidcToken | undefined> };
    Client: { find(id: string): Promise<OidcClient | undefined> };
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    use(middleware: (ctx: KoaContext, next: () => Promise<void>) => Promise<void>): void;
    on(event: string, listener: (...args: unknown[]) => void): void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
    interactionResult(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResults,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<string>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResults,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
  }

  export class Check {
    static REQUEST_PROMPT: true;
    static NO_NEED_TO_PROMPT: false;
    constructor(
      reason: string,
      description: string,
      error: string,
      check: (ctx: KoaContext) => boolean | Promise<boolean>,
    );
  }

  export interface PromptPolicy {
    get(name: string): { checks: { add(check: Check, index?: number): void } } | undefined;
  }

  export const interactionPolicy: {
    base(): PromptPolicy;
    Check: typeof Check;
  };

  export const errors: Record<string, new (description?: string) => Error>;

  /** A key oidc-provider signs with through `sign()` (`features.externalSigningSupport`). */
  export class ExternalSigningKey {
    kid: string;
    alg: string;
    keyObject(): import('node:crypto').KeyObject;
    sign(data: Buffer): Promise<Uint8Array>;
  }

  export default Provider;
}
