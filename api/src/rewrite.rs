//! A response future that applies a per-request rewrite once the inner service answers.
//!
//! Filters that only touch responses of a few api keys create a [`Rewrite`] value for those requests only;
//! every other request passes with `None` and costs nothing beyond the poll.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use crate::{FilterError, KafkaResponse};
use pin_project::pin_project;

/// A rewrite applied to one response.
pub trait Rewrite {
    /// Changes `response` in place.
    fn rewrite(self, response: &mut KafkaResponse) -> Result<(), FilterError>;
}

/// The inner future, then the rewrite (if any).
#[pin_project]
#[derive(Debug)]
pub struct RewriteResponse<F, R> {
    /// The inner service's future.
    #[pin]
    inner: F,
    /// The rewrite to apply, taken when the response arrives.
    rewrite: Option<R>,
}

impl<F, R> RewriteResponse<F, R> {
    /// Wraps `inner`; `rewrite` runs on its successful response.
    pub fn new(inner: F, rewrite: Option<R>) -> Self {
        Self { inner, rewrite }
    }
}

impl<F, R> Future for RewriteResponse<F, R>
where
    F: Future<Output = Result<KafkaResponse, FilterError>>,
    R: Rewrite,
{
    type Output = Result<KafkaResponse, FilterError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(rewrite) = this.rewrite.take() {
            if response.has_body() {
                rewrite.rewrite(&mut response)?;
            }
        }
        Poll::Ready(Ok(response))
    }
}
