// A real OpenID Connect provider for the OIDC login tests (npm package oidc-provider, pinned in
// package-lock.json).  Usage: node provider.mjs CONFIG.json
//
// CONFIG: {"port": P, "client_id": ..., "client_secret": ..., "redirect_uris": [...],
//          "accounts": {"alice": {"name": "...", "realm_access": {"roles": [...]},
//                                 "resource_access": {"<client>": {"roles": [...]}}, "projects": [...]}}}
// Logins go through the dev-interactions form (any password); the account's claims come from
// CONFIG, Keycloak-style role claims included, in the ID token as well as in userinfo.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${cfg.port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: cfg.client_id,
    client_secret: cfg.client_secret,
    redirect_uris: cfg.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  scopes: ['openid', 'profile', 'roles'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    roles: ['realm_access', 'resource_access', 'projects'],
  },
  conformIdTokenClaims: false, // role claims in the ID token too, as Keycloak does
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['cc-py-test-cookie-key'] },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, preferred_username: id, ...(cfg.accounts[id] || {}) }),
  }),
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(cfg.port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
