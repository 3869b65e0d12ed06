import PEFTCommands

CommandLineTool.main()
