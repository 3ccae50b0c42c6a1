import { choiceSetting, intSetting, listSetting, mapSetting, numberSetting } from '../setting.js';
import { allowListProblem } from '../../http/allow-list.js';
import { TOKEN } from '../../app/fetch-headers.js';

const section = 'HTTP limits and proxies';

export const PROXY_PROTOCOL_MODES = ['off', 'v1', 'v2', 'auto'] as const;
export type ProxyProtocolMode = (typeof PROXY_PROTOCOL_MODES)[number];

/** The error then names the setting (forwarded_allow_ips or proxy_allow_from) and the bad entry. */
const allowList = (list: readonly string[]): string | undefined => allowListProblem(list);

export const http = {
  limitRequestLine: intSetting({
    key: 'limitRequestLine',
    gunicorn: 'limit_request_line',
    section,
    flags: ['--limit-request-line'],
    metavar: 'INT',
    default: 4094,
    check: (n) => (n > 8190 ? 'must be <= 8190 (0: unlimited)' : undefined),
    short: 'The maximum size of the request line in bytes (0: unlimited); a longer one gets 414.',
    doc:
      'The request line is `METHOD TARGET HTTP/1.1`. Limits the damage of a denial-of-service by huge URLs. ' +
      'At most 8190, as in Gunicorn (a larger value stops the start); 0 raises it to 1 MiB, a bound kept so ' +
      'that one request cannot make a worker buffer without end (the whole header section is bounded too, see ' +
      'docs/security.md). Over HTTP/2 the ' +
      'line is `:method` and `:path`, counted as if they made one.',
  }),
  limitRequestFields: intSetting({
    key: 'limitRequestFields',
    gunicorn: 'limit_request_fields',
    section,
    flags: ['--limit-request-fields'],
    metavar: 'INT',
    default: 100,
    check: (n) => (n > 32768 ? 'must be <= 32768' : undefined),
    short: 'The maximum number of header fields in a request; more gets 431.',
    doc:
      'As in Gunicorn, at most 32768; 0 means that maximum. The count is exact: every field of a request within ' +
      'the limit reaches the app, and one more gets 431 (the whole header section is still bounded, see ' +
      'docs/security.md). Over HTTP/2 `:authority` counts as the Host field and cookie crumbs as one Cookie ' +
      'field; the other pseudo-header fields are the request line.',
  }),
  limitRequestFieldSize: intSetting({
    key: 'limitRequestFieldSize',
    gunicorn: 'limit_request_field_size',
    section,
    flags: ['--limit-request-field-size'],
    metavar: 'INT',
    default: 8190,
    short: 'The maximum size of one header field (`Name: value`) in bytes (0: unlimited); more gets 431.',
    doc:
      'A field counts as it is most often written, `Name: value`: its name, the colon, one space and its value ' +
      '(Node\'s parser drops the spaces around a value before tunicorn sees it, so `Name:value` counts one ' +
      'byte more than was sent, and spaces beyond one are not counted). ' +
      '0 lifts the per-field limit; the whole header section is still bounded (see docs/security.md). Over ' +
      'HTTP/2 a field over 64 KiB has its stream refused whatever this says (nghttp2\'s own bound).',
  }),
  headerTimeout: numberSetting({
    key: 'headerTimeout',
    section,
    flags: ['--header-timeout'],
    metavar: 'SECONDS',
    default: 10,
    positive: true,
    short: 'A client must send a whole request header section within this many seconds; else 408 and close.',
    doc:
      'Counted from the first byte of a request (or the connection); a late one is answered within half a ' +
      'second of it. Empty lines (CR, LF) before a request line start none: a kept-alive connection that ' +
      'sends only those is closed as an idle one (see `keepalive`), a new one at this timeout at the latest. ' +
      'A slow client (slowloris) is cut off ' +
      'without holding anything but one idle socket; other clients are served meanwhile. Over TLS the ' +
      'handshake is part of the first request\'s time: a connection that has not brought a whole first request ' +
      'within it is closed, handshake done or not. An HTTP/2 connection that opens no stream this long after ' +
      'it started is closed (h2c with a GOAWAY first), whatever PINGs or SETTINGS it sends (its frames are ' +
      'nghttp2\'s to check). Not in Gunicorn.',
  }),
  bodyTimeout: numberSetting({
    key: 'bodyTimeout',
    section,
    flags: ['--body-timeout'],
    metavar: 'SECONDS',
    default: 30,
    short: 'While a request body is being received, the longest pause between two parts of it (0: no limit).',
    doc:
      'A body that stops flowing gets 408 (or, once the app has answered, the connection is closed). A ' +
      'body that keeps flowing may take as long as it needs. Only the client\'s silence counts: not the time ' +
      'after the whole body has come (an app may take longer to answer, read or not), nor a pause of an app ' +
      'that has begun to read the body and has not taken what came (busy between two reads, or a paused ' +
      'request), during which the server reads nothing from the client. An app waiting for the next part (a ' +
      '`for await` over the request) has taken all that came: a client silent then gets 408. A body larger ' +
      'than the buffers that the app has not begun to read stops coming, and gets 408 all the same. Over ' +
      'HTTP/2 it holds for each stream: a stalled ' +
      'one gets 408 (or is reset once the app has answered) and the session\'s other streams go on. Over ' +
      'HTTP/1 a sweep looks at the bodies being received every 0.5 s (or every body_timeout, if shorter), so a ' +
      'stalled one is cut between body_timeout and that + 0.5 s after its last byte; a request costs no timer. ' +
      'Not in Gunicorn.',
  }),
  forwardedAllowIps: listSetting({
    key: 'forwardedAllowIps',
    gunicorn: 'forwarded_allow_ips',
    section,
    flags: ['--forwarded-allow-ips'],
    metavar: 'LIST',
    commaSeparated: true,
    default: ['127.0.0.1', '::1'],
    defaultDoc: '`127.0.0.1`, `::1` (`$FORWARDED_ALLOW_IPS` when set)',
    env: 'FORWARDED_ALLOW_IPS',
    dynamicDefault: (env) =>
      env.FORWARDED_ALLOW_IPS ? env.FORWARDED_ALLOW_IPS.split(',').map((x) => x.trim()).filter(Boolean) : ['127.0.0.1', '::1'],
    check: allowList,
    short: 'Peers trusted to set X-Forwarded-For, X-Forwarded-Proto and Forwarded: addresses, CIDR ranges, or *.',
    doc:
      'From a trusted peer, the client address and scheme the app sees (`req.socket.remoteAddress`, ' +
      '`clientAddress(request)`, the URL scheme of a Fetch request, the access log\'s `%(h)s`) come from ' +
      'those headers. From any other peer the headers are removed before the app sees them, so an app that ' +
      'reads them cannot be fooled. Unix socket peers are always trusted. `*` trusts any peer (Gunicorn\'s ' +
      '"disable checking of front-end IPs"), not the hops the headers name: the client is then the last hop, ' +
      'the address the connecting proxy added, so a client cannot choose its own; the addresses and ranges ' +
      'listed are walked past (docs/security.md, "Behind a proxy").',
  }),
  secureSchemeHeaders: mapSetting({
    key: 'secureSchemeHeaders',
    gunicorn: 'secure_scheme_headers',
    section,
    flags: ['--secure-scheme-header'],
    metavar: 'HEADER=VALUE',
    default: Object.freeze({ 'X-FORWARDED-PROTOCOL': 'ssl', 'X-FORWARDED-PROTO': 'https', 'X-FORWARDED-SSL': 'on' }),
    check: (headers) => {
      const seen = new Map<string, string>();
      for (const name of Object.keys(headers)) {
        if (!TOKEN.test(name)) return `${JSON.stringify(name)} is not a header name`;
        const first = seen.get(name.toLowerCase());
        // Two values for one header (names are case-insensitive): one of them would be ignored in silence.
        if (first !== undefined) return `${JSON.stringify(first)} and ${JSON.stringify(name)} are one header; give it once`;
        seen.set(name.toLowerCase(), name);
      }
      return undefined;
    },
    short: 'Headers (and values) by which a trusted proxy says the request came over HTTPS.',
    doc:
      'Only read from peers in `forwarded_allow_ips`; removed from the request otherwise. As in Gunicorn, a ' +
      'request whose secure scheme headers contradict each other (`X-Forwarded-Proto: http` with ' +
      '`X-Forwarded-Ssl: on`) gets 400. Header names are ' +
      'case-insensitive (one given twice, in two cases, is refused, as is a name that is no header name). The headers given replace the default three, they do not add to them: repeat the ' +
      'flag for each header to keep.',
  }),
  proxyProtocol: choiceSetting({
    key: 'proxyProtocol',
    gunicorn: 'proxy_protocol',
    section,
    flags: ['--proxy-protocol'],
    metavar: '[MODE]',
    choices: PROXY_PROTOCOL_MODES,
    bareValue: 'auto',
    booleans: { true: 'auto', false: 'off' },
    default: 'off' as ProxyProtocolMode,
    short: 'Expect a PROXY protocol header (off, v1, v2, auto) on every connection from proxy_allow_from.',
    doc:
      'HAProxy\'s PROXY protocol: the balancer sends the client\'s address before the HTTP bytes. With it on, ' +
      'the address the app sees is the one in the header. A connection from a peer not in ' +
      '`proxy_allow_from`, without the header, or with a malformed one (an address not of the family it ' +
      'declares, a port not in 0-65535) is closed. `auto` accepts v1 or v2. As Gunicorn\'s switch, ' +
      '`--proxy-protocol` alone (followed by the app or another flag) is `auto`, and so is `true` in a config ' +
      'file or as the flag\'s value (`false` is `off`); a word after it that is no mode, before the app (`--proxy-protocol v3 app.ts`), ' +
      'is refused as a bad value, as argparse refuses it (one that reads as a file, `a.ts b.ts`, is two APP arguments). Plain HTTP listeners only: with `certfile` it is a ' +
      'config error.',
  }),
  proxyAllowFrom: listSetting({
    key: 'proxyAllowFrom',
    gunicorn: 'proxy_allow_ips',
    section,
    flags: ['--proxy-allow-from'],
    metavar: 'LIST',
    commaSeparated: true,
    default: ['127.0.0.1', '::1'],
    check: allowList,
    short: 'Peers allowed to send a PROXY protocol header: addresses, CIDR ranges, or *.',
    doc:
      'A connection from any other peer is closed while proxy_protocol is on. A peer on a Unix socket ' +
      '(`unix:` bind) is always allowed, as it is always trusted by `forwarded_allow_ips`.',
  }),
};
