/// Sloth: the umbrella library. `import Sloth` gives the whole public API.
@_exported import SlothCore
@_exported import SlothFormats
@_exported import SlothModels
@_exported import SlothTraining
@_exported import SlothTokenizers
@_exported import SlothTemplates
@_exported import SlothExport
