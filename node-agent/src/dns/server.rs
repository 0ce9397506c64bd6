//! The request handler: [`answer`] for cluster names, the upstream resolvers
//! for everything else.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;

use super::records::{Records, answer};

/// The EDNS payload size the server offers and asks upstreams for (the DNS
/// flag day 2020 value: no IP fragmentation).
const MAX_PAYLOAD: u16 = 1232;

/// The handler hickory's server calls for every well-formed query.
pub(super) struct Handler {
    records: watch::Receiver<Records>,
    upstream: Upstream,
}

impl Handler {
    pub(super) fn new(
        records: watch::Receiver<Records>,
        upstream: Vec<SocketAddr>,
        timeout: Duration,
    ) -> Self {
        Self {
            records,
            upstream: Upstream {
                servers: upstream,
                timeout,
            },
        }
    }
}

/// The sections of a reply, before encoding.
struct Reply {
    metadata: Metadata,
    answers: Vec<Record>,
    authority: Vec<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    fn error(request: &Request, code: ResponseCode) -> Self {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = code;
        metadata.recursion_available = true;
        Self {
            metadata,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().clamp(512, MAX_PAYLOAD));
            edns.set_version(0);
            edns
        });
        let reply = if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            Reply::error(request, ResponseCode::NotImp)
        } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            Reply::error(request, ResponseCode::BADVERS)
        } else {
            match request.request_info() {
                Ok(info) => self.reply(request, info.query.original()).await,
                // Not exactly one question.
                Err(_) => Reply::error(request, ResponseCode::FormErr),
            }
        };
        let metadata = reply.metadata;
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            reply.answers.iter(),
            reply.authority.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "sending a DNS response failed");
                let mut metadata = metadata;
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

impl Handler {
    async fn reply(&self, request: &Request, query: &Query) -> Reply {
        // The borrow ends with the statement: no lock is held across an await.
        let local = answer(&self.records.borrow(), query);
        let mut reply = Reply::error(request, ResponseCode::NoError);
        let Some(local) = local else {
            return match self.upstream.resolve(query).await {
                Some(upstream) => {
                    reply.metadata.response_code = upstream.metadata.response_code;
                    reply.answers = upstream.answers;
                    reply.authority = upstream.authorities;
                    reply.additionals = upstream.additionals;
                    reply
                }
                None => Reply::error(request, ResponseCode::ServFail),
            };
        };
        reply.metadata.authoritative = true;
        reply.metadata.response_code = local.code;
        reply.answers = local.answers;
        reply.authority = local.authority;
        reply.additionals = local.additionals;
        if let Some(target) = local.chase {
            // An ExternalName: resolve its target and append that answer.
            let query = Query::query(target, query.query_type());
            if let Some(upstream) = self.upstream.resolve(&query).await {
                reply.metadata.authoritative = false;
                reply.metadata.response_code = upstream.metadata.response_code;
                reply.answers.extend(upstream.answers);
                reply.authority = upstream.authorities;
                reply.additionals = upstream.additionals;
            }
        }
        reply
    }
}

/// The resolvers queries outside the cluster go to.
struct Upstream {
    servers: Vec<SocketAddr>,
    timeout: Duration,
}

impl Upstream {
    /// The first answer any upstream gives to `query` (any response code),
    /// trying them in order; `None` when none answers.
    async fn resolve(&self, query: &Query) -> Option<Message> {
        let mut message = Message::query();
        message.metadata.id = rand::random();
        message.metadata.recursion_desired = true;
        message.add_query(query.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_PAYLOAD);
        message.set_edns(edns);
        let bytes = match message.to_vec() {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::debug!(%error, "encoding an upstream query failed");
                return None;
            }
        };
        for server in &self.servers {
            match tokio::time::timeout(self.timeout, exchange(*server, &bytes, &message)).await {
                Ok(Ok(reply)) => return Some(reply),
                Ok(Err(error)) => {
                    tracing::debug!(%server, %error, name = %query.name(), "upstream DNS failed");
                }
                Err(_) => tracing::debug!(%server, name = %query.name(), "upstream DNS timed out"),
            }
        }
        tracing::warn!(name = %query.name(), upstream = ?self.servers, "no upstream DNS server answered");
        None
    }
}

/// One query to `server`: UDP, then TCP if the UDP reply is truncated.
async fn exchange(server: SocketAddr, bytes: &[u8], query: &Message) -> std::io::Result<Message> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(bytes).await?;
    let mut buf = vec![0; usize::from(u16::MAX)];
    let reply = loop {
        let n = socket.recv(&mut buf).await?;
        // Anything but the reply to this query (late, spoofed, garbage) is dropped.
        match Message::from_vec(&buf[..n]) {
            Ok(reply) if matches_query(&reply, query) => break reply,
            _ => {}
        }
    };
    if !reply.metadata.truncation {
        return Ok(reply);
    }
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(bytes.len()).map_err(std::io::Error::other)?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut buf = vec![0; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    let reply = Message::from_vec(&buf).map_err(std::io::Error::other)?;
    if !matches_query(&reply, query) {
        return Err(std::io::Error::other(
            "the TCP reply does not match the query",
        ));
    }
    Ok(reply)
}

/// Whether `reply` answers `query`: same id, a response, the same question.
fn matches_query(reply: &Message, query: &Message) -> bool {
    reply.metadata.id == query.metadata.id
        && reply.metadata.message_type == MessageType::Response
        && reply.queries == query.queries
}
