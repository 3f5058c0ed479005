"""The efvitcp-level API: Endpoint (one stack on one link, poll(handler)), TcpClient,
TcpServer, Connection and the handler binding. Built on the link and core layers; the
package pollnet.backends.efvi re-exports it."""
