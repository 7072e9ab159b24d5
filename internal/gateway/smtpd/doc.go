// Package smtpd is the gateway's SMTP edge: the listener that applies the host
// access table, mail flow policies and recipient access table, and hands each
// accepted message to the queue before it says 250.
//
// It is built on github.com/emersion/go-smtp. A connection first meets the
// HAT: the first sender group whose source matches the client (IP, CIDR,
// forward-confirmed host name, or ALL) names its mail flow policy. TCPREFUSE
// closes the connection, REJECT greets with 554, and ACCEPT, RELAY and
// CONTINUE hand it to go-smtp, which speaks ESMTP with PIPELINING, 8BITMIME,
// SIZE (the policy's limit), ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING, and
// STARTTLS and AUTH PLAIN/LOGIN when configured (AUTH only over TLS).
//
// A recipient is accepted when the RAT accepts it, or for any address when the
// sender group relays or the session authenticated; such mail is outgoing.
// The message is read whole, bounded by the policy's size, given a Received
// header and enqueued; only then does the client get
// "250 2.0.0 Ok: Message <MID> accepted".
//
// # Replies
//
//	when                                      reply
//	TCPREFUSE policy                          connection closed, no greeting
//	REJECT policy, or no sender group         554 5.7.1 <host> Access denied (greeting), then 503 5.5.1 until QUIT
//	concurrent connections per IP exceeded    421 4.7.0 Too many concurrent connections from your IP, try again later (greeting), closed
//	Shutdown                                  421 4.3.2 <host> Service shutting down, closing transmission channel, closed
//	MAIL before STARTTLS, policy requires TLS 530 5.7.0 Must issue a STARTTLS command first
//	MAIL after the policy's messages/session  421 4.7.0 Too many messages for this session, try again later, closed
//	MAIL over the policy's messages/hour/IP   452 4.3.2 Too many messages from your IP this hour, try again later
//	MAIL with a bad sender address            501 5.1.7 Bad sender address syntax
//	RCPT with a bad recipient address         501 5.1.3 Bad recipient address syntax
//	non-ASCII address without SMTPUTF8        553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter
//	MAIL with SIZE= over the limit            552 5.3.4 (go-smtp's text, or ours below)
//	DATA over the limit (rest discarded)      552 5.3.4 Message size exceeds fixed maximum message size
//	RCPT past the policy's recipients         452 4.5.3 Too many recipients
//	RCPT outside the RAT, not relaying        550 5.7.1 Relaying denied
//	message line over 4096 bytes              500 5.5.2 Line too long, closing connection
//	Enqueue failed                            451 4.3.0 Requested action aborted: local error in processing, try again later
//	AUTH before STARTTLS                      523 5.7.10 TLS is required (go-smtp)
//	AUTH with bad credentials                 535 5.7.8 Authentication failed (closed after the 3rd)
//	AUTH while the Authenticator is down      454 4.7.0 Temporary authentication failure
//	unknown command, malformed MAIL/RCPT      500 5.5.2 / 501 5.5.2 (go-smtp)
//
// # Events
//
// Every step is one tracking.Event carrying the Message Tracking sentence
// (Summary) and the mail_logs line (Log) in AsyncOS wording: the new
// connection and its sender group, TLS, "Start MID", From, each RID To,
// "ready", rejections ("Rejected by RAT", "Receiving Failed: …"), aborted
// transactions (Status Aborted) and "ICID n close". Connection events have
// MID 0.
package smtpd
