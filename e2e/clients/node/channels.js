// Opens a connection, opens and closes 100 channels, closes the connection.
const amqp = require('amqplib');

(async () => {
  const conn = await amqp.connect(process.env.AMQP_URL);
  const channels = [];
  for (let i = 0; i < 100; i++) channels.push(await conn.createChannel());
  for (const ch of channels) await ch.close();
  await conn.close();
  console.log('amqplib: 100 channels opened and closed');
})().catch((err) => { console.error(err); process.exit(1); });
