//! Services whose protocol has not landed yet answer with one line and close, so an
//! operator probing the port sees what is there instead of a silent socket.

use std::net::SocketAddr;
use std::rc::Rc;

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;

use crate::config::Service;
use crate::shard::Shard;

fn not_available(service: Service) -> &'static [u8] {
    match service {
        Service::Imap | Service::Imaps => b"* BYE IMAP service not available yet\r\n",
        Service::Pop3 | Service::Pop3s => b"-ERR [SYS/TEMP] POP3 service not available yet\r\n",
        Service::Lmtp => b"421 4.3.2 LMTP service not available yet\r\n",
        Service::Poppassd => b"500 poppassd service not available yet\r\n",
        Service::ManageSieve => b"BYE (TRYLATER) \"ManageSieve service not available yet\"\r\n",
        Service::Http => {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        // A socketmap client speaks first; a netstring temporary failure answers it.
        Service::Socketmap => b"32:TEMP socketmap not available yet,",
    }
}

pub async fn serve(shard: Rc<Shard>, service: Service, mut stream: TcpStream, peer: SocketAddr) {
    let _guard = shard.register_session(service, peer, None);
    let _ = stream.write_all(not_available(service)).await;
    let _ = stream.close().await;
}

pub async fn refuse_busy(service: Service, mut stream: TcpStream) {
    let line: &[u8] = match service {
        Service::Imap | Service::Imaps => b"* BYE [UNAVAILABLE] Too many connections\r\n",
        Service::Pop3 | Service::Pop3s => b"-ERR [SYS/TEMP] Too many connections\r\n",
        Service::Lmtp => b"421 4.3.2 Too many connections\r\n",
        _ => b"",
    };
    let _ = stream.write_all(line).await;
    let _ = stream.close().await;
}
