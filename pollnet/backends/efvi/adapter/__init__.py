"""The pollnet API over the efvitcp level: EfviTcpClient / EfviTcpServer (`client`,
`server` on `base`), their connections (`conn`), the process-wide sim wires (`sim_net`)
and what the factory calls (`factory`). The top of the efvi backend."""
