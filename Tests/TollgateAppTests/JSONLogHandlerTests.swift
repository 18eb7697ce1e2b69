import Foundation
import Logging
import Synchronization
import Testing
import TollgateApp

@Suite("JSON log lines")
struct JSONLogHandlerTests {
    @Test("one JSON object per line, with the level, message, label and metadata as members")
    func lines() throws {
        let lines = Mutex<[String]>([])
        var handler = JSONLogHandler(label: "tollgate", output: .init { line in lines.withLock { $0.append(line) } })
        handler.logLevel = .info
        handler[metadataKey: "tollgate.service"] = "ingress"
        var logger = Logger(label: "tollgate") { _ in handler }
        logger.logLevel = .info
        logger.info("request refused", metadata: [
            "tollgate.request_id": "req_01JD", "message": "clash", "tollgate.tags": ["a", "b"],
            "quote": "say \"hi\"\nbye",
        ])
        logger.debug("not written")
        let written = lines.withLock { $0 }
        try #require(written.count == 1)
        #expect(written[0].hasSuffix("}\n") && written[0].filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(written[0].utf8)) as? [String: String])
        #expect(object["level"] == "info")
        #expect(object["message"] == "request refused")
        #expect(object["metadata.message"] == "clash")
        #expect(object["logger"] == "tollgate")
        #expect(object["tollgate.request_id"] == "req_01JD")
        #expect(object["tollgate.service"] == "ingress")
        #expect(object["tollgate.tags"] == #"["a", "b"]"#)
        #expect(object["quote"] == "say \"hi\"\nbye")
        #expect(object["time"]?.hasSuffix("Z") == true)
    }
}
