/**
 * `sg serve`: the gateway. Until the gateway package lands it serves only `/healthz`.
 */
import * as Command from "@effect/cli/Command"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"

const router = HttpRouter.empty.pipe(
  HttpRouter.get("/healthz", HttpServerResponse.unsafeJson({ status: "ok" }))
)

/** Serves until interrupted (SIGINT, SIGTERM). */
export const serve = Command.make("serve", {}, () =>
  Effect.gen(function*() {
    const port = yield* Config.port("PORT").pipe(Config.withDefault(8080))
    yield* Effect.logInfo(`sg listening on http://localhost:${port} (only /healthz so far: the gateway is not built yet)`)
    return yield* Layer.launch(
      HttpServer.serve(router).pipe(Layer.provide(NodeHttpServer.layer(createServer, { port })))
    )
  })).pipe(Command.withDescription("Run the gateway (with the watchdog under the lease)"))
