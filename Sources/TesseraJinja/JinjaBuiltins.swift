import Foundation

/// Global functions: Jinja's `range`, `namespace`, `dict`, and the two transformers adds to chat templates,
/// `raise_exception(message)` and `strftime_now(format)`.
enum JinjaBuiltins {
    static let names: Set<String> = ["range", "namespace", "dict", "raise_exception", "strftime_now"]
    /// The sandboxed environment transformers uses refuses ranges longer than this.
    static let maxRange = 100_000

    static func call(_ name: String, _ args: JinjaInterpreter.Arguments, line: Int) throws -> JinjaValue {
        switch name {
        case "range":
            return try range(args, line: line)
        case "namespace", "dict":
            var values = JinjaDict()
            for value in args.positional {
                guard case .dict(let dict) = value else {
                    throw ChatTemplateError.runtime(line: line, reason: "\(name)() takes only a dict and keyword arguments")
                }
                for (k, v) in dict.pairs { values[k] = v }
            }
            for (k, v) in args.keyword { values[k] = v }
            return name == "dict" ? .dict(values) : .namespace(JinjaNamespace(values))
        case "raise_exception":
            throw ChatTemplateError.raised(line: line, message: args.value(0, "message")?.pythonString ?? "")
        case "strftime_now":
            guard case .string(let format)? = args.value(0, "format") else {
                throw ChatTemplateError.runtime(line: line, reason: "strftime_now() needs a format string")
            }
            return .string(try strftime(format, date: Date(), line: line))
        default:
            throw ChatTemplateError.unsupported(line: line, construct: "function '\(name)'")
        }
    }

    private static func range(_ args: JinjaInterpreter.Arguments, line: Int) throws -> JinjaValue {
        let ints = try args.positional.map { value -> Int in
            guard let i = value.integer else {
                throw ChatTemplateError.runtime(line: line, reason: "range() arguments must be integers, not '\(value.typeName)'")
            }
            return i
        }
        let (start, stop, step): (Int, Int, Int)
        switch ints.count {
        case 1: (start, stop, step) = (0, ints[0], 1)
        case 2: (start, stop, step) = (ints[0], ints[1], 1)
        case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
        default: throw ChatTemplateError.runtime(line: line, reason: "range() takes 1 to 3 arguments")
        }
        guard step != 0 else { throw ChatTemplateError.runtime(line: line, reason: "range() step must not be zero") }
        let count = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0)
                             : (start > stop ? (start - stop - step - 1) / -step : 0)
        guard count <= maxRange else {
            throw ChatTemplateError.runtime(line: line, reason: "range too big: \(count) items (at most \(maxRange))")
        }
        return .list((0..<count).map { .int(start + $0 * step) })
    }

    /// C `strftime` for the directives chat templates use (%d %m %Y %y %b %B %a %A %H %I %M %S %p %j %%),
    /// in the local time zone and English names, like Python's `datetime.now().strftime`.
    static func strftime(_ format: String, date: Date, line: Int) throws -> String {
        let calendar = Calendar(identifier: .gregorian)
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                      "October", "November", "December"]
        let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        let month = months[max(0, min(11, (c.month ?? 1) - 1))]
        let day = days[max(0, min(6, (c.weekday ?? 1) - 1))]
        let hour = c.hour ?? 0
        func two(_ v: Int?) -> String { let s = String(v ?? 0); return s.count < 2 ? "0" + s : s }
        var out = ""
        var chars = format.makeIterator()
        while let ch = chars.next() {
            guard ch == "%" else { out.append(ch); continue }
            guard let directive = chars.next() else { out.append("%"); break }
            switch directive {
            case "d": out += two(c.day)
            case "m": out += two(c.month)
            case "Y": out += String(c.year ?? 0)
            case "y": out += two((c.year ?? 0) % 100)
            case "b": out += String(month.prefix(3))
            case "B": out += month
            case "a": out += String(day.prefix(3))
            case "A": out += day
            case "H": out += two(hour)
            case "I": out += two(hour % 12 == 0 ? 12 : hour % 12)
            case "M": out += two(c.minute)
            case "S": out += two(c.second)
            case "p": out += hour < 12 ? "AM" : "PM"
            case "j":
                let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date) ?? 0
                let s = String(dayOfYear)
                out += String(repeating: "0", count: max(0, 3 - s.count)) + s
            case "%": out += "%"
            default:
                throw ChatTemplateError.unsupported(line: line, construct: "strftime directive '%\(directive)'")
            }
        }
        return out
    }
}
