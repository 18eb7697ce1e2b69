public import Hummingbird
public import TollgateIngress
public import TollgateProjections
public import TollgateQuery

/// The query API and the dashboard, as `tollgate serve` and `tollgate query` mount them.
public enum QuerySetup {
    /// The admin key, or a read-only virtual key from the control topic's key table.
    public static func authenticator(adminKey: String?, control: ControlPlane) -> QueryAuthenticator {
        QueryAuthenticator(adminKey: adminKey) { secret in
            guard case .success(let entry) = control.keys.authenticate(secret, forModels: false),
                  entry.data.readOnly
            else { return nil }
            return .readOnlyKey(keyID: entry.data.keyID)
        }
    }

    ///
    /// The routes are measured with Hummingbird's `MetricsMiddleware`: the `hb_requests` counter and the
    /// `http_server_request_duration` histogram by route, method and status, and the
    /// `http_server_active_requests` gauge.
    /// Only these routes: the proxy's calls have their own meters, on a path that pays for every one.
    public static func addRoutes<Context: RequestContext>(to router: Router<Context>, store: ProjectionStore,
                                                          authenticator: QueryAuthenticator) {
        let measured = router.group().add(middleware: MetricsMiddleware())
        QueryAPI.addRoutes(to: measured, store: store, authenticator: authenticator)
        Dashboard.addRoutes(to: measured, store: store, authenticator: authenticator)
    }
}
