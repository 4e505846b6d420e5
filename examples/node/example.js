// The venue pages' JavaScript replaced by libtradeauth through koffi:
// - Partner: the Node `generateToken` (jsonwebtoken, HS256 {clientId, iat, exp}) becomes
//   a session that mints, caches and renews the token.
// - Cascade: the viem wallet login (GET /auth challenge, signMessage, POST /auth) becomes
//   one session; the token goes on our own fetch() calls and on the WebSocket.
//
// Usage: node example.js   (SIM_PARTNER, SIM_CASCADE, SIM_CA from scripts/common.sh;
// with NODE_EXTRA_CA_CERTS=$SIM_CA Node's own fetch() is used too)
'use strict';

const { Session, TradeauthError, version } = require('./tradeauth');

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run scripts/demo_c.sh)`);
  return value;
}

function redact({ name, value }) {
  const scheme = value.startsWith('Bearer ') ? 'Bearer ' : '';
  return `${name}: ${scheme}<redacted, ${value.length - scheme.length} characters>`;
}

async function main() {
  console.log(`libtradeauth ${version()} through koffi`);
  const caFile = env('SIM_CA');
  const nodeTrustsSim = process.env.NODE_EXTRA_CA_CERTS === caFile;

  // ---- Partner: instead of generateToken(clientId, secretKey) with jsonwebtoken.
  const partner = Session.partner('demo-client', 'demo-partner-secret-key-0123456789abcdef',
    { baseUrl: env('SIM_PARTNER'), caFile });
  try {
    const header = partner.header();
    console.log('partner token minted:', redact(header));
    // The claims are not secret; show that they are the page's {clientId, iat, exp}.
    const claims = JSON.parse(Buffer.from(header.value.split('.')[1], 'base64url').toString());
    console.log(`  claims: clientId=${claims.clientId}, exp - iat = ${claims.exp - claims.iat} s`);
    if (nodeTrustsSim) {
      const res = await fetch(`${env('SIM_PARTNER')}/portfolio`, { headers: { [header.name]: header.value } });
      console.log(`  fetch GET /portfolio with the header -> HTTP ${res.status}`);
    }
    const viaLib = partner.request('POST', '/orders', JSON.stringify({ symbol: 'AAPL', side: 'buy', quantity: 1 }));
    console.log(`  library POST /orders -> HTTP ${viaLib.status}: ${viaLib.body}`);
  } finally {
    partner.close();
  }

  // ---- Cascade: instead of viem's createWalletClient + signMessage + two fetches.
  const cascade = Session.cascade('0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
    '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80', // public Hardhat test key
    { baseUrl: env('SIM_CASCADE'), caFile });
  try {
    const header = cascade.header(); // challenge, EIP-191 signature, session token
    console.log('cascade session token:', redact(header));
    if (nodeTrustsSim) {
      const res = await fetch(`${env('SIM_CASCADE')}/account/orders`, { headers: { Authorization: header.value } });
      console.log(`  fetch GET /account/orders -> HTTP ${res.status}: ${await res.text()}`);
    } else {
      const res = cascade.request('GET', '/account/orders');
      console.log(`  library GET /account/orders -> HTTP ${res.status}: ${res.body}`);
    }
    const message = JSON.parse(cascade.wsAuthMessage(1));
    console.log(`  WebSocket auth message: method=${message.method}, id=${message.id} (bearer not shown)`);
  } finally {
    cascade.close();
  }

  // ---- Error handling: the library's status and message, as an exception.
  try {
    Session.cascade('0x1234', '0x00', { baseUrl: env('SIM_CASCADE'), caFile });
    throw new Error('a malformed address was accepted');
  } catch (e) {
    if (!(e instanceof TradeauthError)) throw e;
    console.log(`malformed deposit address -> ${e.statusName} (status ${e.status})`);
  }
  console.log('node example done');
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
