// A small binding of libtradeauth for Node.js through koffi (a C FFI from npm): no
// native addon to compile. Only what the examples need; every C call is checked and a
// failure becomes a TradeauthError with the library's message (never a secret).
'use strict';

const path = require('node:path');
const koffi = require('koffi');

const libPath = process.env.TRADEAUTH_LIB ||
  path.join(__dirname, '..', '..', 'target', 'debug', 'libtradeauth.so');
const lib = koffi.load(libPath);

koffi.opaque('tradeauth_options');
koffi.opaque('tradeauth_session');
koffi.opaque('tradeauth_response');

const c = {
  version: lib.func('const char *tradeauth_version(void)'),
  statusName: lib.func('const char *tradeauth_status_name(uint32_t status)'),
  lastError: lib.func('uint32_t tradeauth_last_error_message(_Out_ uint8_t *buf, size_t len, _Out_ size_t *written)'),
  optionsNew: lib.func('uint32_t tradeauth_options_new(_Out_ tradeauth_options **out)'),
  optionsFree: lib.func('void tradeauth_options_free(tradeauth_options *options)'),
  setBaseUrl: lib.func('uint32_t tradeauth_options_set_base_url(tradeauth_options *options, const char *url)'),
  addRootFile: lib.func('uint32_t tradeauth_options_add_root_file(tradeauth_options *options, const char *path)'),
  partnerNew: lib.func('uint32_t tradeauth_partner_new(const char *client_id, const char *secret_key, uint64_t ttl_secs, const tradeauth_options *options, _Out_ tradeauth_session **out)'),
  cascadeNew: lib.func('uint32_t tradeauth_cascade_new(const char *deposit, const char *key, const tradeauth_options *options, _Out_ tradeauth_session **out)'),
  sessionFree: lib.func('void tradeauth_session_free(tradeauth_session *session)'),
  header: lib.func('uint32_t tradeauth_session_header(const tradeauth_session *session, _Out_ uint8_t *name, size_t name_len, _Out_ size_t *name_written, _Out_ uint8_t *value, size_t value_len, _Out_ size_t *value_written)'),
  wsAuthMessage: lib.func('uint32_t tradeauth_session_ws_auth_message(const tradeauth_session *session, uint64_t id, _Out_ uint8_t *buf, size_t len, _Out_ size_t *written)'),
  request: lib.func('uint32_t tradeauth_session_request(const tradeauth_session *session, const char *method, const char *path, const char *json_body, const char *headers, _Out_ tradeauth_response **out)'),
  responseStatus: lib.func('uint16_t tradeauth_response_status(const tradeauth_response *response)'),
  responseBody: lib.func('uint32_t tradeauth_response_body(const tradeauth_response *response, _Out_ const uint8_t **body, _Out_ size_t *len)'),
  responseFree: lib.func('void tradeauth_response_free(tradeauth_response *response)'),
};

class TradeauthError extends Error {
  constructor(status, what) {
    super(`${what}: ${c.statusName(status)}: ${lastError()}`);
    this.status = status;
    this.statusName = c.statusName(status);
  }
}

function lastError() {
  const buf = Buffer.alloc(2048);
  const written = [0];
  if (c.lastError(buf, buf.length, written) !== 0) return '(no message)';
  return buf.subarray(0, Number(written[0])).toString('utf8');
}

function check(status, what) {
  if (status !== 0) throw new TradeauthError(status, what);
}

function makeOptions(baseUrl, caFile) {
  const out = [null];
  check(c.optionsNew(out), 'tradeauth_options_new');
  const options = out[0];
  check(c.setBaseUrl(options, baseUrl), 'set_base_url');
  if (caFile) check(c.addRootFile(options, caFile), 'add_root_file');
  return options;
}

class Session {
  constructor(handle) {
    this.handle = handle;
    // Buffers allocated once per session and reused by every header() call.
    this.nameBuf = Buffer.alloc(64);
    this.valueBuf = Buffer.alloc(4096);
  }

  static partner(clientId, secretKey, { baseUrl, caFile, ttlSecs = 0 }) {
    const options = makeOptions(baseUrl, caFile);
    try {
      const out = [null];
      check(c.partnerNew(clientId, secretKey, ttlSecs, options, out), 'tradeauth_partner_new');
      return new Session(out[0]);
    } finally {
      c.optionsFree(options);
    }
  }

  static cascade(depositAddress, delegatePrivateKey, { baseUrl, caFile }) {
    const options = makeOptions(baseUrl, caFile);
    try {
      const out = [null];
      check(c.cascadeNew(depositAddress, delegatePrivateKey, options, out), 'tradeauth_cascade_new');
      return new Session(out[0]);
    } finally {
      c.optionsFree(options);
    }
  }

  /** The header for the next request: { name, value } (value is secret: never log it). */
  header() {
    const nameLen = [0];
    const valueLen = [0];
    check(c.header(this.handle, this.nameBuf, this.nameBuf.length, nameLen,
      this.valueBuf, this.valueBuf.length, valueLen), 'tradeauth_session_header');
    return {
      name: this.nameBuf.subarray(0, Number(nameLen[0])).toString('latin1'),
      value: this.valueBuf.subarray(0, Number(valueLen[0])).toString('latin1'),
    };
  }

  /** The venue's WebSocket auth message (secret: send it, never log it). */
  wsAuthMessage(id = 1) {
    const written = [0];
    check(c.wsAuthMessage(this.handle, id, this.valueBuf, this.valueBuf.length, written),
      'tradeauth_session_ws_auth_message');
    return this.valueBuf.subarray(0, Number(written[0])).toString('utf8');
  }

  /** An authenticated request through the library: { status, body }. */
  request(method, path, jsonBody = null) {
    const out = [null];
    check(c.request(this.handle, method, path, jsonBody, null, out), 'tradeauth_session_request');
    const response = out[0];
    try {
      const body = [null];
      const len = [0];
      check(c.responseBody(response, body, len), 'tradeauth_response_body');
      const n = Number(len[0]);
      const text = n === 0 ? '' : Buffer.from(koffi.decode(body[0], koffi.array('uint8_t', n))).toString('utf8');
      return { status: c.responseStatus(response), body: text };
    } finally {
      c.responseFree(response);
    }
  }

  close() {
    if (this.handle) c.sessionFree(this.handle);
    this.handle = null;
  }
}

module.exports = { Session, TradeauthError, version: () => c.version() };
