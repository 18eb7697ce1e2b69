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

    public static func addRoutes<Context: RequestContext>(to router: Router<Context>, store: ProjectionStore,
                                                          authenticator: QueryAuthenticator) {
        QueryAPI.addRoutes(to: router, store: store, authenticator: authenticator)
        Dashboard.addRoutes(to: router, store: store, authenticator: authenticator)
    }
}
