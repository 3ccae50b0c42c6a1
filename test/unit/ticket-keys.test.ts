/**
 * The master's TLS session-ticket keys (src/arbiter/ticket-keys.ts): none without TLS, 48 random bytes made
 * once and kept, new ones only once a period has passed, and the test-only period override.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TICKET_KEY_PERIOD_MS, TicketKeys, ticketKeyPeriodMs } from '../../src/arbiter/ticket-keys.js';

describe('TicketKeys', () => {
  it('makes no keys while TLS is off, and 48 bytes kept for every worker once it is on', () => {
    const k = new TicketKeys(1000);
    assert.equal(k.forWorker(false, 0), null);
    assert.equal(k.rotated(5000), null, 'nothing to rotate before any key was made');
    const a = k.forWorker(true, 0)!;
    assert.equal(Buffer.from(a, 'base64').length, 48);
    assert.equal(k.forWorker(true, 999), a);
  });

  it('rotates once a period has passed, to new random keys that the next worker gets', () => {
    const k = new TicketKeys(1000);
    const a = k.forWorker(true, 0)!;
    assert.equal(k.rotated(999), null);
    const b = k.rotated(1000)!;
    assert.notEqual(b, a);
    assert.equal(Buffer.from(b, 'base64').length, 48);
    assert.equal(k.forWorker(true, 1001), b);
    assert.equal(k.rotated(1999), null, 'the period counts from the last rotation');
    assert.notEqual(k.rotated(2000), null);
  });

  it('an hour unless the test-only variable sets a positive whole number of milliseconds', () => {
    assert.equal(TICKET_KEY_PERIOD_MS, 3_600_000);
    assert.equal(ticketKeyPeriodMs({}), TICKET_KEY_PERIOD_MS);
    assert.equal(ticketKeyPeriodMs({ TUNICORN_TEST_TICKET_KEY_PERIOD_MS: '250' }), 250);
    for (const bad of ['0', '-5', '1.5', 'soon', '']) assert.equal(ticketKeyPeriodMs({ TUNICORN_TEST_TICKET_KEY_PERIOD_MS: bad }), TICKET_KEY_PERIOD_MS);
  });
});
